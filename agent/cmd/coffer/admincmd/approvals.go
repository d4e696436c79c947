package admincmd

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/wire"
)

// newApprovals is multi-user authorization from the command line: anyone
// who reads the vault lists and shows requests; a Backup Security Admin
// approves or rejects them.
func newApprovals(f *flags) *cobra.Command {
	c := group("approvals", "List, approve or reject requests that need a Backup Security Admin (multi-user authorization)")
	c.Long = `With multi-user authorization on (the default for new vaults), every
operation that needs a security PIN, and turning the setting off, becomes a
request: who asked, what exactly and why (--reason). It runs once, exactly as
asked, when a Backup Security Admin who is not the requester approves it
within the time limit (24 hours unless the control plane's
COFFER_APPROVAL_TTL says otherwise). Each request, approval and rejection
raises a critical alert.`
	var status string
	list := &cobra.Command{
		Use:   "list VAULT [--status pending|approved|executed|failed|rejected|expired]",
		Short: "List a vault's requests, newest first (Reader)",
		Args:  cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			switch status {
			case "", wire.ApprovalPending, wire.ApprovalApproved, wire.ApprovalExecuted, wire.ApprovalFailed, wire.ApprovalRejected, wire.ApprovalExpired:
			default:
				return cli.Usagef("--status must be pending, approved, executed, failed, rejected or expired, not %q", status)
			}
			s, vid, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			as, err := s.cp.Approvals(ctx, vid, status)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tSTATUS\tOPERATION\tREQUESTED BY\tREQUESTED\tEXPIRES\tDECIDED BY")
				for _, a := range as {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Status, oneLine(a.Operation), oneLine(a.RequestedBy),
						tableWhen(&a.RequestedAt), tableWhen(&a.ExpiresAt), dash(oneLine(a.DecidedBy)))
				}
			})
		},
	}
	list.Flags().StringVar(&status, "status", "", "only requests with this status")
	show := &cobra.Command{
		Use:   "show VAULT REQUEST",
		Short: "Show a request: who asked, what, why, and what became of it (Reader)",
		Args:  cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			a, err := s.cp.Approval(ctx, vid, args[1])
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) { approvalDetail(w, a) })
		},
	}
	c.AddCommand(list, show, newDecide(f, true), newDecide(f, false))
	return c
}

func newDecide(f *flags, approve bool) *cobra.Command {
	verb, short := "reject", "Reject a request; nothing runs (Backup Security Admin, not the requester)"
	if approve {
		verb, short = "approve", "Approve a request; it runs at once, once (Backup Security Admin, not the requester)"
	}
	var note string
	c := &cobra.Command{
		Use:   verb + " VAULT REQUEST [--note TEXT]",
		Short: short,
		Long: short + `.

Read the request first with ` + "`coffer admin approvals show VAULT REQUEST`" + `: an
approved request runs exactly as it was asked (its method, path and body).`,
		Args: cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			decide := s.cp.Reject
			if approve {
				decide = s.cp.Approve
			}
			a, err := decide(ctx, vid, args[1], note)
			if err != nil {
				return s.fail(ctx, err)
			}
			if err := s.print(raw, func(w io.Writer) { approvalDetail(w, a) }); err != nil {
				return err
			}
			if a.Status == wire.ApprovalFailed && a.Result != nil {
				return fmt.Errorf("approved, but the operation was refused when it ran: %s (%s)", a.Result.Message, a.Result.Code)
			}
			return nil
		},
	}
	c.Flags().StringVar(&note, "note", "", "why you decided so; stored with the request and in its alert")
	return c
}

func approvalDetail(w io.Writer, a wire.Approval) {
	result := "-"
	if a.Result != nil {
		result = fmt.Sprintf("%d", a.Result.Status)
		if a.Result.Code != "" {
			result += " " + a.Result.Code + ": " + oneLine(a.Result.Message)
		}
	}
	body := "-"
	if len(a.Body) > 0 {
		body = oneLine(string(a.Body))
	}
	kv(w,
		[2]string{"ID", a.ID},
		[2]string{"Status", a.Status},
		[2]string{"Operation", oneLine(a.Operation)},
		[2]string{"Request", a.Method + " " + wire.Version + a.Path},
		[2]string{"Body", body},
		[2]string{"Reason", dash(oneLine(a.Reason))},
		[2]string{"Requested by", oneLine(a.RequestedBy)},
		[2]string{"Requested", detailWhen(&a.RequestedAt)},
		[2]string{"Expires", detailWhen(&a.ExpiresAt)},
		[2]string{"Decided by", dash(oneLine(a.DecidedBy))},
		[2]string{"Decided", detailWhen(a.DecidedAt)},
		[2]string{"Note", dash(oneLine(a.Note))},
		[2]string{"Result", result},
	)
}

// oneLine keeps a table row on one line whatever a requester typed.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
