package admincmd

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newMachine(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "machine VAULT MACHINE",
		Short: "Show a machine and its backup item",
		Args:  cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			m, err := s.cp.Machine(ctx, vid, mid)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) { machineDetail(w, m, s.vault) })
		},
	}
}

func machineDetail(w io.Writer, m wire.Machine, vault string) {
	state := m.State
	switch m.State {
	case wire.MachineStopped:
		state += fmt.Sprintf(" (data retained; `coffer admin resume %s %s` protects it again)", quote(vault), quote(m.Name))
	case wire.MachineDeleted:
		state += fmt.Sprintf(" (purged after %s; `coffer admin undelete %s %s` keeps it)", detailWhen(m.PurgeAfter), quote(vault), quote(m.Name))
	}
	rows := [][2]string{
		{"Name", m.Name},
		{"ID", m.ID},
		{"State", state},
		{"Policy", dash(m.Policy)},
		{"OS", dash(m.OS)},
		{"Agent version", dash(m.AgentVersion)},
		{"Registered", detailWhen(&m.RegisteredAt)},
	}
	if m.StoppedAt != nil {
		rows = append(rows, [2]string{"Stopped", detailWhen(m.StoppedAt)})
	}
	if m.DeletedAt != nil {
		rows = append(rows, [2]string{"Data deleted", detailWhen(m.DeletedAt)})
	}
	if it := m.Item; it != nil {
		last := dash(it.LastBackupStatus)
		if it.LastBackupAt != nil {
			last += " at " + detailWhen(it.LastBackupAt)
		}
		rows = append(rows,
			[2]string{"Last backup", last},
			[2]string{"Latest point", detailWhen(it.LatestPoint)},
			[2]string{"Oldest point", detailWhen(it.OldestPoint)},
			[2]string{"Points", fmt.Sprint(it.Points)},
			[2]string{"Storage", cli.HumanBytes(it.StorageBytes)},
		)
	}
	kv(w, append(rows, [2]string{"Container", dash(m.Container)})...)
}

// machineAction is a command VERB VAULT MACHINE that calls action on the
// machine and prints done's sentence about the machine it answers.
func machineAction(f *flags, verb, short string,
	action func(cp *cpclient.Client, ctx context.Context, vault, machine string) (wire.Machine, error),
	done func(wire.Machine, string) string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " VAULT MACHINE",
		Short: short,
		Args:  cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			m, err := action(s.cp, ctx, vid, mid)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) { fmt.Fprintln(w, done(m, args[0])) })
		},
	}
}
