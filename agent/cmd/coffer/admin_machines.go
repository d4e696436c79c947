package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newAdminMachines(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "machines VAULT",
		Short: "List a vault's machines and their backup items",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ms, raw, err := adminFetch[[]wire.Machine](s, http.MethodGet, adminPath("vaults", id, "machines"), nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tSTATE\tPOLICY\tLAST BACKUP\tLAST BACKUP AT\tLATEST POINT\tPOINTS\tSTORAGE\tID")
				for _, m := range ms {
					it := m.Item
					if it == nil {
						it = &wire.Item{}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.State, adminDash(m.Policy),
						adminDash(it.LastBackupStatus), adminTableWhen(it.LastBackupAt), adminTableWhen(it.LatestPoint),
						it.Points, humanBytes(it.StorageBytes), m.ID)
				}
			})
		},
	}
}

func newAdminMachine(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "machine VAULT MACHINE",
		Short: "Show a machine and its backup item",
		Args:  rangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			m, raw, err := adminFetch[wire.Machine](s, http.MethodGet, adminPath("vaults", vid, "machines", mid), nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) { adminMachineDetail(w, m, s.vault) })
		},
	}
}

// openMachine opens a session and resolves VAULT and MACHINE in args.
func (f *adminFlags) openMachine(c *cobra.Command, args []string) (s *adminSession, vaultID, machineID string, err error) {
	if s, err = f.open(c); err != nil {
		return nil, "", "", err
	}
	if vaultID, err = s.resolveVault(args[0]); err != nil {
		return nil, "", "", err
	}
	if machineID, err = s.resolveMachine(vaultID, args[1]); err != nil {
		return nil, "", "", err
	}
	return s, vaultID, machineID, nil
}

func adminMachineDetail(w io.Writer, m wire.Machine, vault string) {
	state := m.State
	switch m.State {
	case wire.MachineStopped:
		state += fmt.Sprintf(" (data retained; `coffer admin resume %s %s` protects it again)", adminQuote(vault), adminQuote(m.Name))
	case wire.MachineDeleted:
		state += fmt.Sprintf(" (purged after %s; `coffer admin undelete %s %s` keeps it)", adminDetailWhen(m.PurgeAfter), adminQuote(vault), adminQuote(m.Name))
	}
	rows := [][2]string{
		{"Name", m.Name},
		{"ID", m.ID},
		{"State", state},
		{"Policy", adminDash(m.Policy)},
		{"OS", adminDash(m.OS)},
		{"Agent version", adminDash(m.AgentVersion)},
		{"Registered", adminDetailWhen(&m.RegisteredAt)},
	}
	if m.StoppedAt != nil {
		rows = append(rows, [2]string{"Stopped", adminDetailWhen(m.StoppedAt)})
	}
	if m.DeletedAt != nil {
		rows = append(rows, [2]string{"Data deleted", adminDetailWhen(m.DeletedAt)})
	}
	if it := m.Item; it != nil {
		last := adminDash(it.LastBackupStatus)
		if it.LastBackupAt != nil {
			last += " at " + adminDetailWhen(it.LastBackupAt)
		}
		rows = append(rows,
			[2]string{"Last backup", last},
			[2]string{"Latest point", adminDetailWhen(it.LatestPoint)},
			[2]string{"Oldest point", adminDetailWhen(it.OldestPoint)},
			[2]string{"Points", fmt.Sprint(it.Points)},
			[2]string{"Storage", humanBytes(it.StorageBytes)},
		)
	}
	adminKV(w, append(rows, [2]string{"Container", adminDash(m.Container)})...)
}

func newAdminStop(f *adminFlags) *cobra.Command {
	var deleteData bool
	var pin string
	c := &cobra.Command{
		Use:   "stop VAULT MACHINE [--delete-data --pin PIN]",
		Short: "Stop protecting a machine, keeping its data (Operator) or deleting it (Contributor, PIN)",
		Long: `Stop a machine's backups. Its recovery points are kept (Operator) and
retention no longer expires them; ` + "`coffer admin resume`" + ` starts backups again.

With --delete-data (Contributor and a PIN from ` + "`coffer admin pin VAULT`" + `) the data
is soft-deleted: ` + "`coffer admin undelete`" + ` brings it back for 14 days, after which
it is purged for good.`,
		Args: rangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			var extra []http.Header
			switch {
			case deleteData:
				if err := adminNeedPIN(pin, args[0], "--delete-data"); err != nil {
					return err
				}
				extra = append(extra, cpclient.PIN(pin))
			case pin != "":
				return usagef("--pin is only for --delete-data; stopping protection and keeping the data needs none")
			}
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			m, raw, err := adminFetch[wire.Machine](s, http.MethodPost, adminPath("vaults", vid, "machines", mid, "stop"),
				wire.StopProtection{DeleteData: deleteData}, extra...)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) {
				if m.State == wire.MachineDeleted {
					fmt.Fprintf(w, "Stopped protecting %s and deleted its backup data. `coffer admin undelete %s %s` brings it back until %s.\n",
						m.Name, adminQuote(args[0]), adminQuote(m.Name), adminDetailWhen(m.PurgeAfter))
					return
				}
				fmt.Fprintf(w, "Stopped protecting %s; its recovery points are kept. `coffer admin resume %s %s` starts backups again.\n",
					m.Name, adminQuote(args[0]), adminQuote(m.Name))
			})
		},
	}
	c.Flags().BoolVar(&deleteData, "delete-data", false, "also soft-delete the machine's backup data (needs --pin)")
	c.Flags().StringVar(&pin, "pin", "", "security PIN from `coffer admin pin VAULT`")
	return c
}

func newAdminResume(f *adminFlags) *cobra.Command {
	return adminMachineAction(f, "resume", "Resume protecting a stopped machine (Operator)",
		func(m wire.Machine, vault string) string {
			return fmt.Sprintf("%s is protected again; backups run on its policy's schedule.", m.Name)
		})
}

func newAdminUndelete(f *adminFlags) *cobra.Command {
	return adminMachineAction(f, "undelete", "Undelete a machine's soft-deleted data; it stays stopped (Contributor)",
		func(m wire.Machine, vault string) string {
			return fmt.Sprintf("%s's data is back and protection is stopped; `coffer admin resume %s %s` starts backups again.",
				m.Name, adminQuote(vault), adminQuote(m.Name))
		})
}

// adminMachineAction is a bodiless POST on a machine, answered by the machine.
func adminMachineAction(f *adminFlags, verb, short string, done func(wire.Machine, string) string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " VAULT MACHINE",
		Short: short,
		Args:  rangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			m, raw, err := adminFetch[wire.Machine](s, http.MethodPost, adminPath("vaults", vid, "machines", mid, verb), nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) { fmt.Fprintln(w, done(m, args[0])) })
		},
	}
}

func newAdminPoints(f *adminFlags) *cobra.Command {
	var deleted bool
	c := &cobra.Command{
		Use:   "points VAULT MACHINE [--deleted]",
		Short: "List a machine's recovery points",
		Args:  rangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			path := adminPath("vaults", vid, "machines", mid, "points")
			if deleted {
				path += "?deleted=include"
			}
			ps, raw, err := adminFetch[[]wire.Point](s, http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "TIME\tID\tSTATE\tPURGE AFTER\tJOB")
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", adminTableWhen(&p.Time), adminShortID(p.ID), p.State,
						adminTableWhen(p.PurgeAfter), adminDash(p.JobID))
				}
			})
		},
	}
	c.Flags().BoolVar(&deleted, "deleted", false, "include soft-deleted points")
	return c
}

func newAdminPoint(f *adminFlags) *cobra.Command {
	c := adminGroup("point", "Delete or undelete one recovery point")
	var pin string
	del := &cobra.Command{
		Use:   "delete VAULT MACHINE POINT --pin PIN",
		Short: "Soft-delete a recovery point (Contributor and a PIN)",
		Long: `Soft-delete a recovery point. ` + "`coffer admin point undelete`" + ` brings it back
for 14 days; after that it is purged. Needs a PIN from ` + "`coffer admin pin VAULT`" + `.`,
		Args: rangeArgs(3, 3),
		RunE: func(c *cobra.Command, args []string) error {
			if err := adminNeedPIN(pin, args[0], "deleting a recovery point"); err != nil {
				return err
			}
			return adminPointAction(f, c, args, http.MethodDelete, "", cpclient.PIN(pin))
		},
	}
	del.Flags().StringVar(&pin, "pin", "", "security PIN from `coffer admin pin VAULT`")
	undel := &cobra.Command{
		Use:   "undelete VAULT MACHINE POINT",
		Short: "Undelete a soft-deleted recovery point (Contributor)",
		Args:  rangeArgs(3, 3),
		RunE: func(c *cobra.Command, args []string) error {
			return adminPointAction(f, c, args, http.MethodPost, "undelete")
		},
	}
	c.AddCommand(del, undel)
	return c
}

func adminPointAction(f *adminFlags, c *cobra.Command, args []string, method, suffix string, extra ...http.Header) error {
	s, vid, mid, err := f.openMachine(c, args)
	if err != nil {
		return err
	}
	pid, err := s.resolvePoint(vid, mid, args[1], args[2])
	if err != nil {
		return err
	}
	segs := []string{"vaults", vid, "machines", mid, "points", pid}
	if suffix != "" {
		segs = append(segs, suffix)
	}
	p, raw, err := adminFetch[wire.Point](s, method, adminPath(segs...), nil, extra...)
	if err != nil {
		return err
	}
	return s.print(raw, func(w io.Writer) {
		if p.State == wire.PointDeleted {
			fmt.Fprintf(w, "Deleted the recovery point of %s (%s); `coffer admin point undelete %s` brings it back until %s.\n",
				adminDetailWhen(&p.Time), adminShortID(p.ID), strings.Join([]string{adminQuote(args[0]), adminQuote(args[1]), adminShortID(p.ID)}, " "),
				adminDetailWhen(p.PurgeAfter))
			return
		}
		fmt.Fprintf(w, "The recovery point of %s (%s) is %s.\n", adminDetailWhen(&p.Time), adminShortID(p.ID), p.State)
	})
}
