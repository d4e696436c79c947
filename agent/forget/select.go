package forget

import (
	"path/filepath"
	"slices"
	"strings"
)

// Selection narrows the points forget looks at, as restic's --host, --tag
// and --path do: a point outside it is neither judged nor removed. The
// zero Selection takes every point.
type Selection struct {
	Hosts []string   // any of these hosts
	Tags  [][]string // all tags of any one of these lists
	Paths []string   // every one of these among the point's paths
}

// Take reports whether the selection includes pt.
func (s Selection) Take(pt Point) bool {
	if len(s.Hosts) > 0 && !slices.Contains(s.Hosts, pt.Host) {
		return false
	}
	if len(s.Tags) > 0 && !slices.ContainsFunc(s.Tags, func(all []string) bool {
		for _, t := range all {
			if !slices.Contains(pt.Tags, t) {
				return false
			}
		}
		return true
	}) {
		return false
	}
	for _, p := range s.Paths {
		if !slices.ContainsFunc(pt.Paths, func(q string) bool { return samePath(p, q) }) {
			return false
		}
	}
	return true
}

// Select returns the points the selection includes, in order.
func (s Selection) Select(points []Point) []Point {
	var out []Point
	for _, pt := range points {
		if s.Take(pt) {
			out = append(out, pt)
		}
	}
	return out
}

// ParseTags reads --tag values: each is a comma-separated list a point
// must carry all of; repeating the flag takes points matching any list.
func ParseTags(values []string) [][]string {
	var out [][]string
	for _, v := range values {
		var all []string
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				all = append(all, t)
			}
		}
		if len(all) > 0 {
			out = append(out, all)
		}
	}
	return out
}

// samePath compares a --path as typed with a point's path: both cleaned,
// so "/srv/data/" selects the points of "/srv/data".
func samePath(typed, stored string) bool {
	return filepath.Clean(typed) == filepath.Clean(stored)
}
