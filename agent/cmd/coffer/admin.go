package main

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
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Environment variables the admin commands read when their flags are unset.
const (
	adminEnvURL   = "COFFER_CONTROL_PLANE_URL"
	adminEnvToken = "COFFER_ADMIN_TOKEN"
)

// adminTimeout bounds one request; listing machines sums each container's
// blobs on the server, so it is generous.
const adminTimeout = 2 * time.Minute

// adminFlags are the flags every admin command shares.
type adminFlags struct {
	url, token string
	asJSON     bool
}

func newAdmin() *cobra.Command {
	f := &adminFlags{}
	c := adminGroup("admin", "Manage vaults, policies, machines, jobs and alerts on the control plane")
	c.Long = `Manage the control plane: vaults, credentials files, policies, the machines
and their recovery points, jobs and alerts.

Authentication:
  --url    the control plane, e.g. https://coffer-cp.azurewebsites.net
           (default $` + adminEnvURL + `)
  --token  a bearer token (default $` + adminEnvToken + `). Prefer the variable:
           a flag shows in the process list.
           Locally: one of the control plane's COFFER_TOKEN_CONTRIBUTOR,
           _OPERATOR or _READER values.
           In Azure (Entra ID): an access token for the control plane's app
           registration, valid about an hour:
             export ` + adminEnvToken + `=$(az account get-access-token \
               --resource <app ID URI> --query accessToken -o tsv)
           Your role comes from the app roles Backup.Reader, Backup.Operator
           and Backup.Contributor assigned to you.

VAULT is a vault's ID or its name; MACHINE is a machine's ID or its name;
POINT is a recovery point's ID or a unique prefix of it.

--json prints the control plane's JSON instead of a table.`
	c.PersistentFlags().StringVar(&f.url, "url", "", "control plane URL (default $"+adminEnvURL+")")
	c.PersistentFlags().StringVar(&f.token, "token", "", "bearer token: a local role token or an Entra ID access token (default $"+adminEnvToken+")")
	c.PersistentFlags().BoolVar(&f.asJSON, "json", false, "print the control plane's JSON")
	c.AddCommand(
		newAdminVault(f), newAdminCredentials(f), newAdminPIN(f),
		newAdminPolicy(f),
		newAdminMachines(f), newAdminMachine(f), newAdminStop(f), newAdminResume(f), newAdminUndelete(f),
		newAdminPoints(f), newAdminPoint(f),
		newAdminJobs(f),
		newAdminAlerts(f), newAdminAlert(f),
	)
	return c
}

// adminGroup is a command that only holds subcommands. Without a RunE cobra
// would print help and exit 0 for a mistyped subcommand.
func adminGroup(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %s (see `%s --help`)", args[0], c.CommandPath(), c.CommandPath())
			}
			return c.Help()
		},
	}
}

// adminSession is one admin command's connection to the control plane.
type adminSession struct {
	ctx    context.Context
	cp     *cpclient.Client
	out    io.Writer
	asJSON bool
	vault  string // the VAULT argument as typed, for the hints in errors
}

func (f *adminFlags) open(c *cobra.Command) (*adminSession, error) {
	raw := f.url
	if raw == "" {
		raw = os.Getenv(adminEnvURL)
	}
	if raw == "" {
		return nil, usagef("no control plane URL: pass --url or set %s, e.g. https://coffer-cp.azurewebsites.net", adminEnvURL)
	}
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("control plane URL %q is not an http(s) URL like https://coffer-cp.azurewebsites.net; fix --url or %s", raw, adminEnvURL)
	}
	token := f.token
	if token == "" {
		token = os.Getenv(adminEnvToken)
	}
	if token == "" {
		return nil, usagef("no admin token: pass --token or set %s (locally a COFFER_TOKEN_* value; in Azure `az account get-access-token --resource <app ID URI>`)", adminEnvToken)
	}
	// Accept the API's own URL too, as people copy it from the docs.
	base := strings.TrimSuffix(strings.TrimSuffix(raw, "/"), wire.Version)
	return &adminSession{
		ctx:    c.Context(),
		cp:     &cpclient.Client{BaseURL: base, Token: token, HTTP: &http.Client{Timeout: adminTimeout}},
		out:    c.OutOrStdout(),
		asJSON: f.asJSON,
	}, nil
}

// adminPath joins escaped segments under /api/v1.
func adminPath(segs ...string) string {
	var b strings.Builder
	b.WriteString(wire.Version)
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(neturl.PathEscape(s))
	}
	return b.String()
}

// call sends one request and turns an error answer into what an operator
// can act on.
func (s *adminSession) call(method, path string, in, out any, extra ...http.Header) error {
	_, err := s.cp.Do(s.ctx, method, path, in, out, extra...)
	if err == nil {
		return nil
	}
	var se *cpclient.StatusError
	if errors.As(err, &se) {
		return s.explain(se)
	}
	if s.ctx.Err() != nil {
		return err
	}
	return fmt.Errorf("%w; check --url or %s and that the control plane is running", err, adminEnvURL)
}

// adminFetch calls the API and returns its answer both decoded and as received,
// so --json prints exactly what the control plane said.
func adminFetch[T any](s *adminSession, method, path string, in any, extra ...http.Header) (T, json.RawMessage, error) {
	var raw json.RawMessage
	var v T
	if err := s.call(method, path, in, &raw, extra...); err != nil {
		return v, nil, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, raw, fmt.Errorf("decode the control plane's answer to %s %s: %w; is --url the Coffer control plane?", method, path, err)
	}
	return v, raw, nil
}

// adminAPIError is an error answer of the control plane, worded for the CLI.
type adminAPIError struct {
	msg string
	err *cpclient.StatusError
}

func (e *adminAPIError) Error() string { return e.msg }
func (e *adminAPIError) Unwrap() error { return e.err }

func (s *adminSession) explain(se *cpclient.StatusError) error {
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
		fmt.Fprintf(&b, "; get a PIN with `coffer admin pin %s` and pass it with --pin", adminQuote(vault))
	case se.Body.Code == wire.CodePINInvalid:
		fmt.Fprintf(&b, "; a PIN works once, for 5 minutes: get a new one with `coffer admin pin %s`", adminQuote(vault))
	case se.Body.Code == wire.CodeUnauthenticated || se.Status == http.StatusUnauthorized:
		fmt.Fprintf(&b, "; check --token or %s (in Azure, get a fresh access token with `az account get-access-token --resource <app ID URI>`)", adminEnvToken)
	}
	for _, v := range se.Body.Details {
		fmt.Fprintf(&b, "\n  %s", adminViolation(v))
	}
	return &adminAPIError{msg: b.String(), err: se}
}

func adminViolation(v wire.Violation) string {
	return fmt.Sprintf("%s: %s [%s]", v.Field, v.Message, v.Rule)
}

// adminQuote quotes a name for a command the user may paste.
func adminQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.@/:", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// adminIDShape is the form of vault and machine IDs. An argument of this form is
// taken as an ID without listing: listing machines makes the server sum the
// storage of every machine.
var adminIDShape = regexp.MustCompile(`^[0-9a-f]{20}$`)

// resolveVault returns the ID of the vault arg names, by ID or name.
// openVault opens the session and resolves the vault a command names.
func (f *adminFlags) openVault(c *cobra.Command, ref string) (*adminSession, string, error) {
	s, err := f.open(c)
	if err != nil {
		return nil, "", err
	}
	id, err := s.resolveVault(ref)
	return s, id, err
}

func (s *adminSession) resolveVault(arg string) (string, error) {
	s.vault = arg
	if adminIDShape.MatchString(arg) {
		return arg, nil
	}
	vs, _, err := adminFetch[[]wire.Vault](s, http.MethodGet, adminPath("vaults"), nil)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, v := range vs {
		if v.ID == arg || strings.EqualFold(v.Name, arg) {
			ids = append(ids, v.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", usagef("no vault is named %q; `coffer admin vault list` lists them", arg)
	case 1:
		return ids[0], nil
	}
	return "", usagef("%d vaults are named %q (IDs %s); name the one you mean by its ID", len(ids), arg, strings.Join(ids, ", "))
}

// resolveMachine returns the ID of the machine arg names in a vault.
// Machine names are unique in a vault ignoring case, as the server compares
// them lower-cased.
func (s *adminSession) resolveMachine(vaultID, arg string) (string, error) {
	if adminIDShape.MatchString(arg) {
		return arg, nil
	}
	ms, _, err := adminFetch[[]wire.Machine](s, http.MethodGet, adminPath("vaults", vaultID, "machines"), nil)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, m := range ms {
		if m.ID == arg || strings.ToLower(m.Name) == strings.ToLower(arg) {
			ids = append(ids, m.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", usagef("no machine is named %q in vault %s; `coffer admin machines %s` lists them", arg, s.vault, adminQuote(s.vault))
	case 1:
		return ids[0], nil
	}
	return "", usagef("%d machines match %q in vault %s (IDs %s); name the one you mean by its ID", len(ids), arg, s.vault, strings.Join(ids, ", "))
}

var adminPointShape = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// resolvePoint returns the full ID of the point arg names by a unique
// prefix, as tables show only the first 12 digits.
func (s *adminSession) resolvePoint(vaultID, machineID, machineArg, arg string) (string, error) {
	if !adminPointShape.MatchString(arg) {
		return "", usagef("recovery point %q is not an ID: use the hex digits `coffer admin points` shows", arg)
	}
	if len(arg) == 64 {
		return arg, nil
	}
	ps, _, err := adminFetch[[]wire.Point](s, http.MethodGet, adminPath("vaults", vaultID, "machines", machineID, "points")+"?deleted=include", nil)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, p := range ps {
		if strings.HasPrefix(p.ID, arg) {
			ids = append(ids, p.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", usagef("machine %s has no recovery point %s; `coffer admin points %s %s --deleted` lists them", machineArg, arg, adminQuote(s.vault), adminQuote(machineArg))
	case 1:
		return ids[0], nil
	}
	return "", usagef("%d recovery points start with %s; give more digits", len(ids), arg)
}

// print writes raw as indented JSON with --json, or else what human writes
// to an aligned table.
func (s *adminSession) print(raw json.RawMessage, human func(w io.Writer)) error {
	if s.asJSON {
		return adminWriteJSON(s.out, raw)
	}
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

func adminWriteJSON(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("format the control plane's JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// Time layouts: tables are read at a glance; detail views and expiries
// name the zone, as they decide what someone does next.
const (
	adminTableTime  = "2006-01-02 15:04"
	adminDetailTime = "2006-01-02 15:04:05 MST"
)

func adminTableWhen(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format(adminTableTime)
}

func adminDetailWhen(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format(adminDetailTime)
}

func adminDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func adminOnOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// adminShortID is the first 12 digits of an ID, as `coffer points` shows them.
func adminShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// adminKV writes label/value rows; a value of several lines keeps its column.
func adminKV(w io.Writer, rows ...[2]string) {
	for _, r := range rows {
		lines := strings.Split(r[1], "\n")
		fmt.Fprintf(w, "%s:\t%s\n", r[0], lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "\t%s\n", l)
		}
	}
}

// adminNeedPIN rejects an empty --pin before a request the server would refuse.
func adminNeedPIN(pin, vault, what string) error {
	if pin == "" {
		return usagef("%s needs a security PIN: get one with `coffer admin pin %s` and pass it with --pin", what, adminQuote(vault))
	}
	return nil
}

// adminNonEmpty drops empty flag values, so `--recipient ”` clears a list.
func adminNonEmpty(vs []string) []string {
	return slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return strings.TrimSpace(v) == "" })
}
