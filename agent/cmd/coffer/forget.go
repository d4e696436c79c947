package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/forget"
	"github.com/coffer-backup/coffer/agent/prune"
	"github.com/coffer-backup/coffer/agent/repository"
)

// vaultRetention is the answer of forget and prune in vault mode.
func vaultRetention(cmd string) error {
	return cli.Usagef("%s works on a standalone repository (--repo). This machine belongs to a vault, where retention is the control plane's: "+
		"its policy says how long points are kept (`coffer admin policy show VAULT NAME`, change it with `coffer admin policy set`), "+
		"the control plane deletes expired points from server-side times, and its purge frees their data. "+
		"The agent's storage credentials cannot delete, by design, so a compromised machine cannot erase its own history", cmd)
}

// pruneFlags are prune's flags, shared by `forget --prune`.
type pruneFlags struct {
	maxUnused string
}

func (p *pruneFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&p.maxUnused, "max-unused", "5%", `unused space to tolerate in partly used packs before repacking them, as a share of the space in use ("5%", "0%": repack everything) or "unlimited" (only delete wholly unused packs)`)
}

// fraction reads --max-unused.
func (p *pruneFlags) fraction() (float64, error) {
	s := strings.TrimSpace(p.maxUnused)
	if s == "unlimited" {
		return -1, nil
	}
	n, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || !strings.HasSuffix(s, "%") || n < 0 || n > 100 {
		return 0, cli.Usagef(`--max-unused %q: give a percentage from 0%% to 100%% (such as 5%%) or "unlimited"`, p.maxUnused)
	}
	return n / 100, nil
}

type forgetGroupJSON struct {
	Host   string            `json:"host,omitempty"`
	Paths  []string          `json:"paths,omitempty"`
	Keep   []forgetPointJSON `json:"keep"`
	Remove []forgetPointJSON `json:"remove"`
}

type forgetPointJSON struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	Paths   []string  `json:"paths"`
	Tags    []string  `json:"tags,omitempty"`
	Reasons []string  `json:"reasons,omitempty"`
}

type forgetJSON struct {
	DryRun  bool              `json:"dryRun,omitempty"`
	Groups  []forgetGroupJSON `json:"groups"`
	Removed int               `json:"removed"`
	Prune   *prune.Stats      `json:"prune,omitempty"`
}

func newForget() *cobra.Command {
	var (
		f         repoFlags
		p         forget.Policy
		within    string
		groupBy   string
		dryRun    bool
		asJSON    bool
		withPrune bool
		pf        pruneFlags
		hosts     []string
		tags      []string
		paths     []string
	)
	c := &cobra.Command{
		Use:   "forget --repo REPO --keep-… [--prune]",
		Short: "Remove recovery points by keep rules (standalone repositories)",
		Long: `Remove the recovery points that no keep rule keeps, as restic's forget does.
Points are grouped by host and paths (--group-by) and each group is judged on its own.
A point is kept if any rule keeps it:

  --keep-last N      the newest N points
  --keep-hourly N    the newest point of each of the newest N hours that have one
  --keep-daily N     … days        --keep-weekly N   … ISO weeks
  --keep-monthly N   … months      --keep-yearly N   … years
  --keep-within D    every point less than D older than the group's newest (7d, 2w, 6m, 1y, 36h)
  --keep-tag T       every point tagged T (repeat for more tags)

--host, --tag and --path narrow which points are judged at all, as in restic:
points of other hosts, tags or paths are left alone.

Forgetting removes points only; their data stays until ` + "`coffer prune`" + ` (or --prune).
Needs delete rights: a folder, or a SAS with delete ("d").
In a vault, retention is the control plane's policy instead.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if vm, err := f.vaultMode(); err != nil {
				return err
			} else if vm {
				return vaultRetention("forget")
			}
			if within != "" {
				d, err := forget.ParseDuration(within)
				if err != nil {
					return cli.Usagef("--keep-within: %v", err)
				}
				p.Within = d
			}
			if err := p.Validate(); err != nil {
				return cli.UsageError{Err: err}
			}
			by, err := parseGroupBy(groupBy)
			if err != nil {
				return err
			}
			maxUnused, err := pf.fraction()
			if err != nil {
				return err
			}
			r, err := f.open(c.Context())
			if err != nil {
				return err
			}
			sel := forget.Selection{Hosts: hosts, Tags: forget.ParseTags(tags), Paths: paths}
			return runForget(c.Context(), c.OutOrStdout(), r, p, by, forgetRun{dryRun: dryRun, asJSON: asJSON, prune: withPrune, maxUnused: maxUnused, sel: sel})
		},
	}
	f.add(c)
	fl := c.Flags()
	fl.IntVar(&p.Last, "keep-last", 0, "keep the newest N points")
	fl.IntVar(&p.Hourly, "keep-hourly", 0, "keep the newest point of each of the newest N hours")
	fl.IntVar(&p.Daily, "keep-daily", 0, "keep the newest point of each of the newest N days")
	fl.IntVar(&p.Weekly, "keep-weekly", 0, "keep the newest point of each of the newest N ISO weeks")
	fl.IntVar(&p.Monthly, "keep-monthly", 0, "keep the newest point of each of the newest N months")
	fl.IntVar(&p.Yearly, "keep-yearly", 0, "keep the newest point of each of the newest N years")
	fl.StringVar(&within, "keep-within", "", "keep every point within this duration of the group's newest (7d, 2w, 6m, 1y, 36h)")
	fl.StringSliceVar(&p.Tags, "keep-tag", nil, "keep every point with this tag (repeatable)")
	fl.StringArrayVar(&hosts, "host", nil, "judge only the points of this host (repeatable: any of them)")
	fl.StringArrayVar(&tags, "tag", nil, "judge only the points with all of these comma-separated tags (repeatable: any of the lists)")
	fl.StringArrayVar(&paths, "path", nil, "judge only the points that backed up this path (repeatable: all of them)")
	fl.StringVar(&groupBy, "group-by", "host,paths", `judge points in groups of the same "host", "paths", both ("host,paths") or none ("")`)
	fl.BoolVarP(&dryRun, "dry-run", "n", false, "only say what would be removed")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	fl.BoolVar(&withPrune, "prune", false, "then free the data no remaining point uses (coffer prune)")
	pf.add(c)
	return c
}

func parseGroupBy(s string) (forget.GroupBy, error) {
	var by forget.GroupBy
	for part := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(part) {
		case "host":
			by.Host = true
		case "paths":
			by.Paths = true
		case "":
		default:
			return by, cli.Usagef(`--group-by %q: use "host", "paths", "host,paths" or ""`, s)
		}
	}
	return by, nil
}

type forgetRun struct {
	dryRun, asJSON, prune bool
	maxUnused             float64
	sel                   forget.Selection
}

func runForget(ctx context.Context, out io.Writer, r *repository.Repository, p forget.Policy, by forget.GroupBy, o forgetRun) error {
	points, err := r.Points(ctx)
	if err != nil {
		return fmt.Errorf("some points could not be read, so forget removes nothing (run `coffer check`): %w", err)
	}
	in := make([]forget.Point, len(points))
	for i, pt := range points {
		in[i] = forget.Point{ID: pt.ID, Time: pt.Time, Host: pt.Hostname, Paths: pt.Paths, Tags: pt.Tags}
	}
	if o.sel.Hosts != nil || o.sel.Tags != nil || o.sel.Paths != nil {
		// A misspelt host must not look like a forget that found nothing to do.
		if in = o.sel.Select(in); len(in) == 0 && len(points) > 0 {
			return errors.New("no point matches --host, --tag and --path as given, so nothing was judged; `coffer points` lists each point's host, paths and tags")
		}
	}
	groups, err := forget.Apply(in, p, by, time.Local)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	res := forgetJSON{DryRun: o.dryRun, Groups: []forgetGroupJSON{}}
	var remove []string
	for _, g := range groups {
		gj := forgetGroupJSON{Host: g.Host, Paths: g.Paths, Keep: []forgetPointJSON{}, Remove: []forgetPointJSON{}}
		for _, d := range g.Decisions {
			pj := forgetPointJSON{d.Point.ID, d.Point.Time, d.Point.Host, d.Point.Paths, d.Point.Tags, d.Reasons}
			if d.Keep {
				gj.Keep = append(gj.Keep, pj)
			} else {
				gj.Remove = append(gj.Remove, pj)
				remove = append(remove, d.Point.ID)
			}
		}
		res.Groups = append(res.Groups, gj)
	}
	if !o.asJSON {
		printForget(out, groups)
	}
	if !o.dryRun {
		for i, id := range remove {
			if err := r.DeletePoint(ctx, id); err != nil {
				return fmt.Errorf("removed %d of %d points, then: %w", i, len(remove), err)
			}
			res.Removed++
		}
		if !o.asJSON {
			fmt.Fprintf(out, "Removed %d points.\n", res.Removed)
		}
	} else if !o.asJSON {
		fmt.Fprintf(out, "Dry run: would remove %d points.\n", len(remove))
	}
	if o.prune && o.dryRun && !o.asJSON {
		fmt.Fprintln(out, "Dry run: prune would then free the data only the removed points use (see `coffer prune --dry-run` after a real forget).")
	}
	if o.prune && !o.dryRun {
		st, err := prune.Prune(ctx, r, prune.Options{MaxUnused: o.maxUnused, DryRun: o.dryRun, Log: slog.Default()})
		res.Prune = &st
		if err != nil {
			return err
		}
		if !o.asJSON {
			printPrune(out, st)
		}
	}
	if o.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return nil
}

func printForget(out io.Writer, groups []forget.Group) {
	for _, g := range groups {
		var head []string
		if g.Host != "" {
			head = append(head, "host "+g.Host)
		}
		if len(g.Paths) > 0 {
			head = append(head, "paths "+strings.Join(g.Paths, ", "))
		}
		if len(head) > 0 {
			fmt.Fprintf(out, "%s:\n", strings.Join(head, ", "))
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tTIME\tACTION\tREASONS")
		for _, d := range g.Decisions {
			action := "remove"
			if d.Keep {
				action = "keep"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.Point.ID[:12], d.Point.Time.Local().Format("2006-01-02 15:04:05"), action, strings.Join(d.Reasons, ", "))
		}
		tw.Flush()
	}
}
