package admincmd

import (
	"context"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

// idShape is the form of vault and machine IDs. An argument of this form is
// taken as an ID without listing: listing machines makes the server sum the
// storage of every machine.
var idShape = regexp.MustCompile(`^[0-9a-f]{20}$`)

// openVault opens the session and resolves the vault a command names.
func (f *flags) openVault(c *cobra.Command, ref string) (*session, string, error) {
	s, err := f.open(c)
	if err != nil {
		return nil, "", err
	}
	id, err := s.resolveVault(c.Context(), ref)
	return s, id, err
}

// resolveVault returns the ID of the vault arg names, by ID or name.
func (s *session) resolveVault(ctx context.Context, arg string) (string, error) {
	s.vault = arg
	if idShape.MatchString(arg) {
		return arg, nil
	}
	vs, err := s.cp.Vaults(ctx)
	if err != nil {
		return "", s.fail(ctx, err)
	}
	var ids []string
	for _, v := range vs {
		if v.ID == arg || strings.EqualFold(v.Name, arg) {
			ids = append(ids, v.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", cli.Usagef("no vault is named %q; `coffer admin vault list` lists them", arg)
	case 1:
		return ids[0], nil
	}
	return "", cli.Usagef("%d vaults are named %q (IDs %s); name the one you mean by its ID", len(ids), arg, strings.Join(ids, ", "))
}

// resolveMachine returns the ID of the machine arg names in a vault.
// Machine names are unique in a vault ignoring case, as the server compares
// them lower-cased.
func (s *session) resolveMachine(ctx context.Context, vaultID, arg string) (string, error) {
	if idShape.MatchString(arg) {
		return arg, nil
	}
	ms, err := s.cp.Machines(ctx, vaultID)
	if err != nil {
		return "", s.fail(ctx, err)
	}
	var ids []string
	for _, m := range ms {
		if m.ID == arg || strings.ToLower(m.Name) == strings.ToLower(arg) {
			ids = append(ids, m.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", cli.Usagef("no machine is named %q in vault %s; `coffer admin machines %s` lists them", arg, s.vault, quote(s.vault))
	case 1:
		return ids[0], nil
	}
	return "", cli.Usagef("%d machines match %q in vault %s (IDs %s); name the one you mean by its ID", len(ids), arg, s.vault, strings.Join(ids, ", "))
}

var pointShape = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// resolvePoint returns the full ID of the point arg names by a unique
// prefix, as tables show only the first 12 digits.
func (s *session) resolvePoint(ctx context.Context, vaultID, machineID, machineArg, arg string) (string, error) {
	if !pointShape.MatchString(arg) {
		return "", cli.Usagef("recovery point %q is not an ID: use the hex digits `coffer admin points` shows", arg)
	}
	if len(arg) == 64 {
		return arg, nil
	}
	ps, err := s.cp.Points(ctx, vaultID, machineID, true)
	if err != nil {
		return "", s.fail(ctx, err)
	}
	var ids []string
	for _, p := range ps {
		if strings.HasPrefix(p.ID, arg) {
			ids = append(ids, p.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", cli.Usagef("machine %s has no recovery point %s; `coffer admin points %s %s --deleted` lists them", machineArg, arg, quote(s.vault), quote(machineArg))
	case 1:
		return ids[0], nil
	}
	return "", cli.Usagef("%d recovery points start with %s; give more digits", len(ids), arg)
}

// openMachine opens a session and resolves VAULT and MACHINE in args.
func (f *flags) openMachine(c *cobra.Command, args []string) (s *session, vaultID, machineID string, err error) {
	if s, err = f.open(c); err != nil {
		return nil, "", "", err
	}
	if vaultID, err = s.resolveVault(c.Context(), args[0]); err != nil {
		return nil, "", "", err
	}
	if machineID, err = s.resolveMachine(c.Context(), vaultID, args[1]); err != nil {
		return nil, "", "", err
	}
	return s, vaultID, machineID, nil
}
