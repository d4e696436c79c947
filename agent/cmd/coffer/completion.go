package main

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Shell completion of values. Cobra's own `coffer completion
// bash|zsh|fish|powershell` writes the scripts; the scripts call back into
// `coffer __complete`, which lands here. Rather than wire each command by
// hand, registerCompletions reads the placeholders every command's Use line
// already names (VAULT, MACHINE, POINT…), so a new command gets completion
// by naming its arguments the way the others do.

// completionTimeout bounds a lookup: a TAB that hangs on an unreachable
// control plane is worse than no suggestion.
const completionTimeout = 5 * time.Second

// enumValues are the fixed choices of flags whose Use line does not spell
// them out as a|b|c.
var enumValues = map[string][]string{
	"conflict": {"copy", "overwrite", "skip"},
	"group-by": {"host,paths", "host", "paths"},
}

// adminEnumValues are the admin commands' choices, by command and flag.
var adminEnumValues = map[string]map[string][]string{
	"jobs": {
		"status": {wire.StatusInProgress, wire.StatusCompleted, wire.StatusCompletedWithWarnings, wire.StatusFailed, wire.StatusCancelled},
		"type":   {wire.JobBackup, wire.JobRestore, wire.JobRegister, wire.JobConfigure, wire.JobDisable, wire.JobDeleteData},
	},
}

// registerCompletions walks the command tree once, at start-up.
func registerCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command, admin bool)
	walk = func(c *cobra.Command, admin bool) {
		admin = admin || c.Name() == "admin"
		args := positionals(c.Use)
		if c.ValidArgsFunction == nil && len(args) > 0 && c.HasParent() {
			c.ValidArgsFunction = argCompleter(args, admin)
		}
		registerFlagCompletions(c, admin)
		for _, sub := range c.Commands() {
			walk(sub, admin)
		}
	}
	walk(root, false)
}

// positionals are the argument placeholders of a Use line, in order:
// "restore --repo REPO POINT|latest --target DIR" gives [POINT];
// "jobs VAULT [--machine M]" gives [VAULT]. A last placeholder ending in
// "..." or "…" stands for the rest.
func positionals(use string) []string {
	fields := strings.Fields(use)
	var out []string
	inFlag := false // inside "[--flag VALUE]"
	for i := 1; i < len(fields); i++ {
		tok := fields[i]
		if inFlag {
			inFlag = !strings.HasSuffix(tok, "]")
			continue
		}
		bare := strings.Trim(tok, "[]")
		if strings.HasPrefix(bare, "-") {
			inFlag = strings.HasPrefix(tok, "[") && !strings.HasSuffix(tok, "]")
			// "--repo REPO": the value belongs to the flag.
			if !inFlag && !strings.Contains(tok, "=") && i+1 < len(fields) && isPlaceholder(fields[i+1]) && !strings.HasPrefix(fields[i+1], "[") {
				i++
			}
			continue
		}
		if !isPlaceholder(bare) {
			continue
		}
		name, _, _ := strings.Cut(bare, "|")
		out = append(out, name)
	}
	return out
}

func isPlaceholder(s string) bool {
	s = strings.Trim(s, "[]")
	s, _, _ = strings.Cut(s, "|")
	s = strings.TrimRight(strings.TrimSuffix(strings.TrimSuffix(s, "..."), "…"), "0123456789")
	return s != "" && strings.ToUpper(s) == s && strings.IndexFunc(s, func(r rune) bool { return r < 'A' || r > 'Z' }) < 0
}

// kind is what a placeholder names, without its number or repetition.
func kind(placeholder string) string {
	p := strings.TrimSuffix(strings.TrimSuffix(placeholder, "..."), "…")
	return strings.TrimRight(p, "0123456789")
}

// argCompleter completes the n-th argument by the placeholder at n.
func argCompleter(args []string, admin bool) cobra.CompletionFunc {
	return func(c *cobra.Command, given []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		i := len(given)
		if i >= len(args) {
			last := args[len(args)-1]
			if !strings.HasSuffix(last, "...") && !strings.HasSuffix(last, "…") {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			i = len(args) - 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		switch k := kind(args[i]); {
		case admin && k == "VAULT":
			return filterPrefix(adminVaults(ctx, c), toComplete), cobra.ShellCompDirectiveNoFileComp
		case admin && (k == "MACHINE" || k == "TARGET") && len(given) > 0:
			return filterPrefix(adminMachines(ctx, c, given[0]), toComplete), cobra.ShellCompDirectiveNoFileComp
		case admin && k == "POINT" && len(given) > 1:
			return filterPrefix(adminPoints(ctx, c, given[0], given[1]), toComplete), cobra.ShellCompDirectiveNoFileComp
		case !admin && k == "POINT":
			return pointCompletions(ctx, c, toComplete), cobra.ShellCompDirectiveNoFileComp
		case !admin && (k == "PATH" && slices.ContainsFunc(args, func(a string) bool { return kind(a) == "POINT" })):
			// A path inside a point: reading it needs the passphrase and the
			// index, too slow for a TAB; the local file system would mislead.
			return nil, cobra.ShellCompDirectiveNoFileComp
		case k == "PATH" || k == "DIR" || k == "FILE" || k == "MOUNTPOINT":
			return nil, cobra.ShellCompDirectiveDefault
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// registerFlagCompletions gives enum flags their values and the flags that
// name machines or points their lookups.
func registerFlagCompletions(c *cobra.Command, admin bool) {
	enums := choicesInUse(c.Use)
	for name, vs := range enumValues {
		enums[name] = vs
	}
	if admin {
		for name, vs := range adminEnumValues[c.Name()] {
			enums[name] = vs
		}
	}
	c.LocalNonPersistentFlags().VisitAll(func(fl *pflag.Flag) {
		if _, done := c.GetFlagCompletionFunc(fl.Name); done {
			return
		}
		var fn cobra.CompletionFunc
		switch {
		case enums[fl.Name] != nil:
			vs := enums[fl.Name]
			fn = func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return vs, cobra.ShellCompDirectiveNoFileComp
			}
		case admin && (fl.Name == "machine" || fl.Name == "from"):
			fn = func(c *cobra.Command, given []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(given) == 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
				defer cancel()
				return filterPrefix(adminMachines(ctx, c, given[0]), toComplete), cobra.ShellCompDirectiveNoFileComp
			}
		case !admin && fl.Name == "point":
			fn = func(c *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
				defer cancel()
				return pointCompletions(ctx, c, toComplete), cobra.ShellCompDirectiveNoFileComp
			}
		}
		if fn != nil {
			_ = c.RegisterFlagCompletionFunc(fl.Name, fn)
		}
	})
}

// choicesInUse reads "--status pending|approved|…" and "--digest=true|false"
// from a Use line.
func choicesInUse(use string) map[string][]string {
	out := map[string][]string{}
	fields := strings.Fields(use)
	for i, tok := range fields {
		tok = strings.Trim(tok, "[]")
		if !strings.HasPrefix(tok, "--") {
			continue
		}
		name, val, hasEq := strings.Cut(strings.TrimPrefix(tok, "--"), "=")
		if !hasEq {
			if i+1 >= len(fields) {
				continue
			}
			val = strings.Trim(fields[i+1], "[]")
		}
		if strings.Contains(val, "|") && strings.ToLower(val) == val {
			out[name] = strings.Split(val, "|")
		}
	}
	return out
}

// filterPrefix keeps the candidates ("value" or "value\tdescription") that
// start with what was typed.
func filterPrefix(cs []cobra.Completion, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, c := range cs {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// pointCompletions are the points of the command's repository, or of this
// machine's vault, starting with what was typed, plus "latest". IDs come
// from the object names, which need no passphrase; the time and paths are
// added as descriptions when the passphrase is at hand without asking.
func pointCompletions(ctx context.Context, c *cobra.Command, toComplete string) []cobra.Completion {
	f := repoFlagsOf(c)
	var ids []string
	descr := map[string]string{}
	if vm, err := f.vaultMode(); err == nil && vm {
		ps, err := f.session.Client.AgentPoints(ctx)
		if err != nil {
			return nil
		}
		for _, p := range ps {
			ids = append(ids, p.ID)
			descr[p.ID] = p.Time.Local().Format("2006-01-02 15:04")
		}
	} else if f.repo != "" {
		be, err := f.backend(ctx)
		if err != nil {
			return nil
		}
		if err := be.List(ctx, layout.PointsPrefix, func(fi storage.Info) error {
			if id, ok := layout.ParsePoint(fi.Name); ok {
				ids = append(ids, id)
			}
			return nil
		}); err != nil {
			return nil
		}
		for id, d := range pointDescriptions(ctx, f, be) {
			descr[id] = d
		}
	}
	slices.Sort(ids)
	out := filterPrefix([]cobra.Completion{cobra.CompletionWithDesc("latest", "the newest point")}, toComplete)
	for _, id := range ids {
		if !strings.HasPrefix(id, toComplete) {
			continue
		}
		// The short ID `coffer points` shows is enough to name a point, and
		// fits a command line; a longer prefix typed gets the full ID.
		show := id
		if len(toComplete) < 12 && !ambiguousShort(ids, id) {
			show = id[:12]
		}
		out = append(out, cobra.CompletionWithDesc(show, descr[id]))
	}
	return out
}

func ambiguousShort(ids []string, id string) bool {
	n := 0
	for _, other := range ids {
		if len(other) >= 12 && other[:12] == id[:12] {
			n++
		}
	}
	return len(id) < 12 || n > 1
}

// pointDescriptions reads each point's time, host and paths, only when the
// passphrase is in the environment or a file: a TAB must never prompt.
func pointDescriptions(ctx context.Context, f *repoFlags, be storage.Backend) map[string]string {
	var pass []byte
	if f.passphraseFile != "" {
		b, err := os.ReadFile(f.passphraseFile)
		if err != nil {
			return nil
		}
		pass = []byte(strings.TrimRight(string(b), "\r\n"))
	} else if p, ok := os.LookupEnv("COFFER_PASSPHRASE"); ok {
		pass = []byte(p)
	} else {
		return nil
	}
	r, err := repository.Open(ctx, be, pass, repository.Options{})
	if err != nil {
		return nil
	}
	points, _ := r.Points(ctx)
	out := map[string]string{}
	for _, p := range points {
		out[p.ID] = p.Time.Local().Format("2006-01-02 15:04") + " " + p.Hostname + " " + strings.Join(p.Paths, ", ")
	}
	return out
}

// repoFlagsOf reads the repository flags a command was given so far.
func repoFlagsOf(c *cobra.Command) *repoFlags {
	get := func(name string) string {
		if fl := c.Flag(name); fl != nil {
			return fl.Value.String()
		}
		return ""
	}
	return &repoFlags{repo: get("repo"), passphraseFile: get("passphrase-file"), cacheDir: get("cache-dir"), configDir: get("config-dir")}
}

// adminClient is the control plane client of an admin command, from its
// flags or the environment; nil without a URL and token.
func adminClient(c *cobra.Command) *cpclient.Client {
	get := func(flag, env string) string {
		if fl := c.Flag(flag); fl != nil && fl.Value.String() != "" {
			return fl.Value.String()
		}
		return os.Getenv(env)
	}
	url, token := get("url", "COFFER_CONTROL_PLANE_URL"), get("token", "COFFER_ADMIN_TOKEN")
	if url == "" || token == "" {
		return nil
	}
	base := strings.TrimSuffix(strings.TrimSuffix(url, "/"), wire.Version)
	return &cpclient.Client{BaseURL: base, Token: token, HTTP: &http.Client{Timeout: completionTimeout}}
}

func adminVaults(ctx context.Context, c *cobra.Command) []cobra.Completion {
	cp := adminClient(c)
	if cp == nil {
		return nil
	}
	vs, err := cp.Vaults(ctx)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, v := range vs {
		out = append(out, cobra.CompletionWithDesc(v.Name, v.ID))
	}
	return out
}

func adminMachines(ctx context.Context, c *cobra.Command, vault string) []cobra.Completion {
	cp := adminClient(c)
	if cp == nil {
		return nil
	}
	vaultID := resolveVaultID(ctx, cp, vault)
	if vaultID == "" {
		return nil
	}
	ms, err := cp.Machines(ctx, vaultID)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, m := range ms {
		out = append(out, cobra.CompletionWithDesc(m.Name, m.State))
	}
	return out
}

func adminPoints(ctx context.Context, c *cobra.Command, vault, machine string) []cobra.Completion {
	cp := adminClient(c)
	if cp == nil {
		return nil
	}
	vaultID := resolveVaultID(ctx, cp, vault)
	if vaultID == "" {
		return nil
	}
	machineID := resolveMachineID(ctx, cp, vaultID, machine)
	if machineID == "" {
		return nil
	}
	ps, err := cp.Points(ctx, vaultID, machineID, c.Name() == "undelete")
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, p := range ps {
		out = append(out, cobra.CompletionWithDesc(p.ID, p.Time.Local().Format("2006-01-02 15:04")))
	}
	return out
}

// resolveVaultID is the ID of the vault an argument names by ID or name,
// as the admin commands accept either; "" when none or several match.
func resolveVaultID(ctx context.Context, cp *cpclient.Client, arg string) string {
	vs, err := cp.Vaults(ctx)
	if err != nil {
		return ""
	}
	var ids []string
	for _, v := range vs {
		if v.ID == arg || strings.EqualFold(v.Name, arg) {
			ids = append(ids, v.ID)
		}
	}
	if len(ids) != 1 {
		return ""
	}
	return ids[0]
}

// resolveMachineID is resolveVaultID for a machine of a vault.
func resolveMachineID(ctx context.Context, cp *cpclient.Client, vaultID, arg string) string {
	ms, err := cp.Machines(ctx, vaultID)
	if err != nil {
		return ""
	}
	var ids []string
	for _, m := range ms {
		if m.ID == arg || strings.EqualFold(m.Name, arg) {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) != 1 {
		return ""
	}
	return ids[0]
}
