// Package admincmd is `coffer admin`: the commands an administrator runs
// against the control plane's API with a bearer token. They resolve names
// to IDs, print tables or the API's JSON as received, and turn the API's
// error codes into what the operator can do next.
package admincmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Environment variables the admin commands read when their flags are unset.
const (
	envURL   = "COFFER_CONTROL_PLANE_URL"
	envToken = "COFFER_ADMIN_TOKEN"
)

// requestTimeout bounds one request; listing machines sums each container's
// blobs on the server, so it is generous.
const requestTimeout = 2 * time.Minute

// flags are the flags every admin command shares.
type flags struct {
	url, token string
	asJSON     bool
	reason     string // why, for an operation that needs a Security Admin's approval
}

// New is the `coffer admin` command and its subcommands.
func New() *cobra.Command {
	f := &flags{}
	c := group("admin", "Manage vaults, policies, machines, jobs and alerts on the control plane")
	c.Long = `Manage the control plane: vaults, credentials files, policies, the machines
and their recovery points, jobs and alerts.

Authentication:
  --url    the control plane, e.g. https://coffer-cp.azurewebsites.net
           (default $` + envURL + `)
  --token  a bearer token (default $` + envToken + `). Prefer the variable:
           a flag shows in the process list.
           Locally: one of the control plane's COFFER_TOKEN_CONTRIBUTOR,
           _OPERATOR or _READER values.
           In Azure (Entra ID): an access token for the control plane's app
           registration, valid about an hour:
             export ` + envToken + `=$(az account get-access-token \
               --resource <app ID URI> --query accessToken -o tsv)
           Your role comes from the app roles Backup.Reader, Backup.Operator
           and Backup.Contributor assigned to you.

VAULT is a vault's ID or its name; MACHINE is a machine's ID or its name;
POINT is a recovery point's ID or a unique prefix of it.

` + pinRules + `

Soft delete: deleted data, recovery points and the key files a passphrase
change retires are kept for the vault's soft-delete period (14 days unless
the control plane's COFFER_SOFT_DELETE_DAYS says more) before they are purged;
` + "`coffer admin undelete`, `coffer admin point undelete`" + ` and
` + "`coffer admin key undelete`" + ` bring them back, and ` + "`coffer admin keys`" + ` lists the
retired key files.

Passphrases: each machine's passphrase is a Key Vault secret that only that
machine can read or write (the role Coffer Machine Passphrase, granted on
that one secret when the machine registers). No Coffer admin role and not the
control plane can read a passphrase; to restore one machine's data on
another, hand its passphrase over yourself (--source-passphrase-file).

--json prints the control plane's JSON instead of a table.`
	c.PersistentFlags().StringVar(&f.url, "url", "", "control plane URL (default $"+envURL+")")
	c.PersistentFlags().StringVar(&f.token, "token", "", "bearer token: a local role token or an Entra ID access token (default $"+envToken+")")
	c.PersistentFlags().BoolVar(&f.asJSON, "json", false, "print the control plane's JSON")
	c.PersistentFlags().StringVar(&f.reason, "reason", "", "why: stored with a request that needs a Backup Security Admin's approval (multi-user authorization)")
	c.AddCommand(
		newVault(f), newCredentials(f), newPIN(f),
		newPolicy(f),
		newMachines(f), newMachine(f), newStop(f), newResume(f), newUndelete(f),
		newRestoreGrant(f),
		newPoints(f), newPoint(f),
		newKeys(f), newKey(f),
		newJobs(f),
		newAlerts(f), newAlert(f),
		newApprovals(f),
	)
	return c
}

// pinRules is what every command that takes --pin repeats: when a PIN is
// needed, and what wrong PINs cost.
const pinRules = `Security PINs: ` + "`coffer admin pin VAULT`" + ` makes one (Contributor); it is
valid 5 minutes and works once. A PIN is needed to turn security features
off, to stop protection and delete data, to delete a recovery point, and to
write, assign or delete a policy when that shortens any machine's effective
retention. After 5 wrong PINs the vault's PIN is void and PIN tries are
refused for 15 minutes; then generate a new one.

Multi-user authorization (on by default for new vaults): each of these
operations, and turning it off, needs no PIN but becomes a request, stored
with --reason, that a Backup Security Admin other than you approves within
24 hours (` + "`coffer admin approvals`" + `); it then runs once.`

// group is a command that only holds subcommands. Without a RunE cobra
// would print help and exit 0 for a mistyped subcommand.
func group(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cli.Usagef("unknown command %q for %s (see `%s --help`)", args[0], c.CommandPath(), c.CommandPath())
			}
			return c.Help()
		},
	}
}

// session is one admin command's connection to the control plane. The
// command's context is passed to each call, not kept here.
type session struct {
	cp     *cpclient.Client
	out    io.Writer
	asJSON bool
	vault  string // the VAULT argument as typed, for the hints in errors
}

func (f *flags) open(c *cobra.Command) (*session, error) {
	raw := f.url
	if raw == "" {
		raw = os.Getenv(envURL)
	}
	if raw == "" {
		return nil, cli.Usagef("no control plane URL: pass --url or set %s, e.g. https://coffer-cp.azurewebsites.net", envURL)
	}
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, cli.Usagef("control plane URL %q is not an http(s) URL like https://coffer-cp.azurewebsites.net; fix --url or %s", raw, envURL)
	}
	token := f.token
	if token == "" {
		token = os.Getenv(envToken)
	}
	if token == "" {
		return nil, cli.Usagef("no admin token: pass --token or set %s (locally a COFFER_TOKEN_* value; in Azure `az account get-access-token --resource <app ID URI>`)", envToken)
	}
	// Accept the API's own URL too, as people copy it from the docs.
	base := strings.TrimSuffix(strings.TrimSuffix(raw, "/"), wire.Version)
	var hdr http.Header
	if f.reason != "" {
		hdr = http.Header{wire.ReasonHeader: {f.reason}}
	}
	return &session{
		cp:     &cpclient.Client{BaseURL: base, Token: token, HTTP: &http.Client{Timeout: requestTimeout}, Header: hdr},
		out:    c.OutOrStdout(),
		asJSON: f.asJSON,
	}, nil
}

// keep returns a context under which a call keeps its answer, exactly as
// received, so --json prints what the control plane said.
func keep(ctx context.Context) (context.Context, *json.RawMessage) {
	raw := new(json.RawMessage)
	return cpclient.KeepAnswer(ctx, raw), raw
}

// fail turns a failed call into what an operator can act on: the API's
// error codes become hints that name this CLI's commands and flags.
func (s *session) fail(ctx context.Context, err error) error {
	var se *cpclient.StatusError
	var pe *cpclient.PendingError
	switch {
	case errors.As(err, &se):
		return s.explain(se)
	case errors.As(err, &pe):
		// Nothing happened yet: say so, and how it goes on.
		return err
	case ctx.Err() != nil:
		return err
	case errors.Is(err, cpclient.ErrBadAnswer):
		return fmt.Errorf("%w; is --url the Coffer control plane?", err)
	}
	return fmt.Errorf("%w; check --url or %s and that the control plane is running", err, envURL)
}

// apiError is an error answer of the control plane, worded for the CLI.
type apiError struct {
	msg string
	err *cpclient.StatusError
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.err }

func (s *session) explain(se *cpclient.StatusError) error {
	msg := strings.TrimSpace(se.Body.Message)
	if msg == "" {
		msg = fmt.Sprintf("the control plane answered %d %s", se.Status, http.StatusText(se.Status))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)", msg, se.Body.Code)
	vault := s.vault
	if vault == "" {
		vault = "VAULT"
	}
	switch {
	case se.Body.Code == wire.CodePINRequired:
		fmt.Fprintf(&b, "; get a PIN with `coffer admin pin %s` and pass it with --pin", quote(vault))
	case se.Body.Code == wire.CodePINLocked:
		wait := "15 minutes"
		if se.RetryAfter > 0 {
			wait = se.RetryAfter.Round(time.Second).String()
		}
		fmt.Fprintf(&b, "; after 5 wrong PINs the vault's PINs are void and tries are refused: wait %s, then get a new PIN with `coffer admin pin %s`", wait, quote(vault))
	case se.Body.Code == wire.CodePINInvalid:
		fmt.Fprintf(&b, "; a PIN works once, for 5 minutes, and 5 wrong ones lock PINs for 15 minutes: get a new one with `coffer admin pin %s`", quote(vault))
	case se.Body.Code == wire.CodeUnauthenticated || se.Status == http.StatusUnauthorized:
		fmt.Fprintf(&b, "; check --token or %s (in Azure, get a fresh access token with `az account get-access-token --resource <app ID URI>`)", envToken)
	}
	for _, v := range se.Body.Details {
		fmt.Fprintf(&b, "\n  %s", violation(v))
	}
	return &apiError{msg: b.String(), err: se}
}

func violation(v wire.Violation) string {
	return fmt.Sprintf("%s: %s [%s]", v.Field, v.Message, v.Rule)
}

// quote quotes a name for a command the user may paste: for a POSIX
// shell, or on Windows for both cmd.exe and PowerShell, where a path's
// backslashes need no quoting and only double quotes quote in both.
func quote(s string) string {
	safe := "-_.@/:"
	if runtime.GOOS == "windows" {
		safe += `\`
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(safe, r))
	}) < 0 {
		return s
	}
	if runtime.GOOS == "windows" {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// print writes the kept answer as indented JSON with --json, or else what
// human writes to an aligned table.
func (s *session) print(raw *json.RawMessage, human func(w io.Writer)) error {
	if s.asJSON {
		return writeJSON(s.out, *raw)
	}
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

func writeJSON(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("format the control plane's JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// needPIN rejects an empty --pin before a request the server would
// refuse, unless --reason asks for a Security Admin's approval instead.
func (f *flags) needPIN(pin, vault, what string) error {
	if pin == "" && f.reason == "" {
		return cli.Usagef("%s needs a security PIN: get one with `coffer admin pin %s` and pass it with --pin "+
			"(with multi-user authorization on, give --reason instead: it becomes a request a Backup Security Admin approves)", what, quote(vault))
	}
	return nil
}

// nonEmpty drops empty flag values, so `--recipient ”` clears a list.
func nonEmpty(vs []string) []string {
	return slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return strings.TrimSpace(v) == "" })
}
