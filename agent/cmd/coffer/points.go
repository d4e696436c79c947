package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/wire"
)

type pointJSON struct {
	ID      string           `json:"id"`
	Time    time.Time        `json:"time"`
	Host    string           `json:"host"`
	Paths   []string         `json:"paths"`
	Tags    []string         `json:"tags"`
	Parent  string           `json:"parent,omitempty"`
	Summary pointSummaryJSON `json:"summary"`
	// Suspicious and FalsePositive come from the vault (wire.Point): the
	// ransomware alarm fired on the point's backup, and who cleared it.
	Suspicious    string `json:"suspicious,omitempty"`
	FalsePositive string `json:"falsePositive,omitempty"`
	// Deleted and PurgeAfter: an admin soft-deleted the point in the vault;
	// its objects stay until the purge, and restoring it needs --deleted.
	Deleted    bool       `json:"deleted,omitempty"`
	PurgeAfter *time.Time `json:"purgeAfter,omitempty"`
}

// flagText is a point's FLAG column: what the vault says of it. A point
// the vault does not list (not registered yet, or no vault) has none.
func flagText(vp wire.Point, known bool) string {
	var flags []string
	if known && vp.State == wire.PointDeleted {
		flags = append(flags, "DELETED: purged after "+when(vp.PurgeAfter))
	}
	switch {
	case !known || vp.Suspicious == "":
	case vp.FalsePositive != "":
		flags = append(flags, "false positive")
	default:
		flags = append(flags, "SUSPECT: do not restore")
	}
	if len(flags) == 0 {
		return "-"
	}
	return strings.Join(flags, "; ")
}

func newPoints() *cobra.Command {
	var f repoFlags
	var asJSON bool
	var pf pointFilter
	c := &cobra.Command{
		Use:   "points [--repo REPO] [--host HOST] [--tag TAG] [--path PATH] [--latest N]",
		Short: "List the recovery points",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := f.open(c.Context())
			if err != nil {
				return err
			}
			points, loadErr := r.Points(c.Context())
			if points, err = pf.apply(points); err != nil {
				return err
			}
			vps := vaultPointStates(c, &f, "points flagged by the ransomware alarm or deleted by an admin are not marked; check `coffer admin points` before restoring")
			out := c.OutOrStdout()
			if asJSON {
				list := []pointJSON{}
				for _, p := range points {
					vp, del := vps[p.ID], false
					if _, del = deletedInVault(vps, p.ID); !del {
						vp.PurgeAfter = nil
					}
					list = append(list, pointJSON{p.ID, p.Time, p.Hostname, nonNil(p.Paths), nonNil(p.Tags), p.Parent, pointSummaryJSON(p.Summary), vp.Suspicious, vp.FalsePositive, del, vp.PurgeAfter})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(list); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tHOST\tTAGS\tFILES\tSIZE\tPATHS\tFLAG")
				var suspects []wire.Point
				deleted := 0
				for _, p := range points {
					vp, known := vps[p.ID]
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.ID[:12], p.Time.Local().Format("2006-01-02 15:04:05"),
						p.Hostname, tagText(p.Tags), p.Summary.Files, cli.HumanBytes(p.Summary.Bytes), strings.Join(p.Paths, ", "), flagText(vp, known))
					if vp.Suspicious != "" && vp.FalsePositive == "" {
						suspects = append(suspects, vp)
					}
					if _, del := deletedInVault(vps, p.ID); del {
						deleted++
					}
				}
				tw.Flush()
				for _, p := range suspects {
					fmt.Fprintf(out, "\n%s: %s\nRestore an earlier point: the vault keeps the ones before it.\n", p.ID[:12], p.Suspicious)
				}
				if deleted > 0 {
					fmt.Fprintf(out, "\n%d point(s) marked DELETED were deleted by an admin: `latest` passes over them, and restoring one needs --deleted until the purge (or an admin's `coffer admin point undelete`).\n", deleted)
				}
			}
			if loadErr != nil {
				return fmt.Errorf("some points could not be read (run `coffer check`): %w", loadErr)
			}
			return nil
		},
	}
	f.add(c)
	pf.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
