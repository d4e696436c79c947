package main

import (
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/repository"
)

// pointFilter selects points as restic's `snapshots` does: each option
// narrows the list, and --latest keeps the newest of each host and paths.
type pointFilter struct {
	hosts  []string
	tags   []string // each "a,b" needs both a and b; any one entry will do
	paths  []string // a point must hold every one
	latest int
}

func (pf *pointFilter) add(c *cobra.Command) {
	fl := c.Flags()
	fl.StringArrayVar(&pf.hosts, "host", nil, "only points of this `HOST` (repeatable: any of them)")
	fl.StringArrayVar(&pf.tags, "tag", nil, "only points with this `TAG`; \"a,b\" needs both, repeated flags need either")
	fl.StringArrayVar(&pf.paths, "path", nil, "only points whose backed-up paths include this `PATH` (repeatable: all of them)")
	fl.IntVar(&pf.latest, "latest", 0, "only the newest `N` points of each host and set of paths")
}

// apply returns the points that pass, oldest first as given.
func (pf *pointFilter) apply(points []*repository.Point) ([]*repository.Point, error) {
	if pf.latest < 0 {
		return nil, cli.Usagef("--latest %d: give a count of points, 1 or more", pf.latest)
	}
	want := make([]string, 0, len(pf.paths))
	for _, p := range pf.paths {
		// Points record absolute, clean paths (archiver.CleanPaths).
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, cli.Usagef("--path %s: %v", p, err)
		}
		want = append(want, abs)
	}
	var out []*repository.Point
	for _, p := range points {
		if len(pf.hosts) > 0 && !slices.Contains(pf.hosts, p.Hostname) {
			continue
		}
		if len(pf.tags) > 0 && !slices.ContainsFunc(pf.tags, func(group string) bool { return hasTags(p, group) }) {
			continue
		}
		if !slices.ContainsFunc(want, func(w string) bool { return !slices.Contains(p.Paths, w) }) {
			out = append(out, p)
		}
	}
	if pf.latest == 0 {
		return out, nil
	}
	// Walk newest first, keeping up to N per group, then restore the order.
	seen := map[string]int{}
	var kept []*repository.Point
	for i := len(out) - 1; i >= 0; i-- {
		p := out[i]
		key := p.Hostname + "\x00" + strings.Join(p.Paths, "\x00")
		if seen[key] < pf.latest {
			seen[key]++
			kept = append(kept, p)
		}
	}
	slices.Reverse(kept)
	return kept, nil
}

// hasTags reports whether p carries every tag of a comma-separated group.
func hasTags(p *repository.Point, group string) bool {
	for t := range strings.SplitSeq(group, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(p.Tags, t) {
			return false
		}
	}
	return true
}

// tagText is a point's TAGS column.
func tagText(tags []string) string {
	if len(tags) == 0 {
		return "-"
	}
	return strings.Join(tags, ",")
}
