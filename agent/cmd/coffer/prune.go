package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/prune"
)

func newPrune() *cobra.Command {
	var (
		f      repoFlags
		pf     pruneFlags
		dryRun bool
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "prune --repo REPO [--max-unused 5%] [--dry-run]",
		Short: "Free the space of data no recovery point uses (standalone repositories)",
		Long: `Delete the packs no recovery point uses, and repack partly used packs, the emptiest
first, until the unused space left is at most --max-unused of the space in use, as restic's
prune does. A prune stopped at any moment (even killed) leaves a sound repository; run it
again to finish. Two prunes never run at once, and a backup that would save a point needing
data a running prune removes is refused with a message to run it again.

Needs delete and replace rights: a folder, or a SAS with delete ("d") and write ("w").
In a vault, the control plane frees unused data itself.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if vm, err := f.vaultMode(); err != nil {
				return err
			} else if vm {
				return vaultRetention("prune")
			}
			maxUnused, err := pf.fraction()
			if err != nil {
				return err
			}
			r, err := f.open(c.Context())
			if err != nil {
				return err
			}
			st, err := prune.Prune(c.Context(), r, prune.Options{MaxUnused: maxUnused, DryRun: dryRun, Log: slog.Default()})
			if err != nil {
				return err
			}
			out := c.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printPrune(out, st)
			return nil
		},
	}
	f.add(c)
	pf.add(c)
	c.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "only say what would be deleted and repacked")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printPrune(out io.Writer, st prune.Stats) {
	verb := map[bool]string{false: "", true: "would be "}[st.DryRun]
	fmt.Fprintf(out, "%d points use %d blobs (%s) in %d packs; %d blobs (%s) are unused.\n",
		st.Points, st.BlobsUsed, cli.HumanBytes(st.BytesUsed), st.Packs, st.BlobsUnused, cli.HumanBytes(st.BytesUnused))
	fmt.Fprintf(out, "Packs %sdeleted: %d; %srepacked: %d (%s copied into %d new packs).\n",
		verb, st.PacksDeleted, verb, st.PacksRepacked, cli.HumanBytes(st.BytesRepacked), st.PacksWritten)
	if st.TempFilesRemoved > 0 {
		fmt.Fprintf(out, "Removed %d temp files that interrupted writes left behind.\n", st.TempFilesRemoved)
	}
	if st.KeptForLists > 0 {
		fmt.Fprintf(out, "Kept whole: %d packs named by pack lists without their points (a backup saving its point, or one stopped).\n", st.KeptForLists)
	}
	written := st.BytesWritten
	if st.DryRun {
		written = st.BytesRepacked // about what the new packs will take
	}
	fmt.Fprintf(out, "Space %sfreed: %s; unused space left: %s.\n", verb, cli.HumanBytes(st.BytesFreed-written), cli.HumanBytes(st.UnusedAfter))
}
