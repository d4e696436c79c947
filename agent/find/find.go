// Package find searches recovery points for paths by name pattern and
// groups what it finds by version: for each path, each distinct version
// (type, size, modification time and content) with the points holding it,
// newest first. Identical subtrees at the same place in several points are
// searched once.
package find

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
)

// TreeLoader loads a tree by ID (repository.Repository does).
type TreeLoader interface {
	LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error)
}

// Point is a point to search.
type Point struct {
	ID   string
	Time time.Time
	Tree crypto.ID
}

// PointRef names a point holding a version.
type PointRef struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// Version is one state of a path.
type Version struct {
	Type    string     `json:"type"`
	Size    int64      `json:"size"`
	ModTime time.Time  `json:"mtime"`
	Points  []PointRef `json:"points"` // newest first
	key     string
}

// Match is a path that matched, with its versions, the one in the newest
// point first.
type Match struct {
	Path     string    `json:"path"`
	Versions []Version `json:"versions"`
}

// Options narrow a search.
type Options struct {
	// Pattern is a shell pattern (path.Match) for the name; one holding a
	// slash is matched against the whole path from the root instead.
	Pattern string
	// IgnoreCase matches without regard to case.
	IgnoreCase bool
	// Path, if set, limits the search to this path and what is below it.
	Path string
}

// Matcher is the pattern compiled, checked once.
type matcher struct {
	pattern  string
	fullPath bool
	fold     bool
}

func newMatcher(o Options) (matcher, error) {
	m := matcher{pattern: o.Pattern, fullPath: strings.Contains(o.Pattern, "/"), fold: o.IgnoreCase}
	if m.fullPath {
		if len(m.pattern) >= 3 && m.pattern[1] == ':' && (m.pattern[2] == '/' || m.pattern[2] == '\\') {
			m.pattern = PointPath(m.pattern) // C:/Users/*/x.docx; a backslash elsewhere stays an escape
		}
		m.pattern = strings.TrimPrefix(m.pattern, "/")
	}
	if m.fold {
		m.pattern = strings.ToLower(m.pattern)
	}
	if _, err := path.Match(m.pattern, ""); err != nil {
		return m, fmt.Errorf("pattern %q: %w", o.Pattern, err)
	}
	return m, nil
}

func (m matcher) match(p, name string) bool {
	s := name
	if m.fullPath {
		s = strings.TrimPrefix(p, "/")
	}
	if m.fold {
		s = strings.ToLower(s)
	}
	ok, _ := path.Match(m.pattern, s)
	return ok
}

// PointPath is a path as a point names it: slash-separated, with a
// Windows volume (C:\Users) as its letter (/C/Users), as the archiver
// stores it, so a search can be given the path as the machine wrote it.
func PointPath(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	if len(p) >= 2 && p[1] == ':' && ('A' <= p[0] && p[0] <= 'Z' || 'a' <= p[0] && p[0] <= 'z') && (len(p) == 2 || p[2] == '/') {
		p = "/" + p[:1] + p[2:]
	}
	return p
}

type hit struct {
	path string
	v    Version
}

// Find searches the points, newest first, and returns the matches sorted
// by path.
func Find(ctx context.Context, l TreeLoader, points []Point, o Options) ([]Match, error) {
	m, err := newMatcher(o)
	if err != nil {
		return nil, err
	}
	prefix := strings.Trim(PointPath(o.Path), "/")
	s := &searcher{l: l, m: m, prefix: prefix, memo: map[memoKey][]hit{}}
	points = slices.Clone(points)
	slices.SortStableFunc(points, func(a, b Point) int { return b.Time.Compare(a.Time) })
	byPath := map[string]*Match{}
	for _, p := range points {
		hits, err := s.search(ctx, p.Tree, "/")
		if err != nil {
			return nil, fmt.Errorf("point %s: %w", p.ID, err)
		}
		for _, h := range hits {
			mt := byPath[h.path]
			if mt == nil {
				mt = &Match{Path: h.path}
				byPath[h.path] = mt
			}
			i := slices.IndexFunc(mt.Versions, func(v Version) bool { return v.key == h.v.key })
			if i < 0 {
				mt.Versions = append(mt.Versions, h.v)
				i = len(mt.Versions) - 1
			}
			mt.Versions[i].Points = append(mt.Versions[i].Points, PointRef{ID: p.ID, Time: p.Time})
		}
	}
	out := make([]Match, 0, len(byPath))
	for _, mt := range byPath {
		out = append(out, *mt)
	}
	slices.SortFunc(out, func(a, b Match) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

type memoKey struct {
	tree crypto.ID
	dir  string
}

type searcher struct {
	l      TreeLoader
	m      matcher
	prefix string
	memo   map[memoKey][]hit
}

// within reports whether p is inside the searched path, and descend
// whether the search must go below p to reach it.
func (s *searcher) within(p string) (inside, descend bool) {
	rel := strings.TrimPrefix(p, "/")
	if s.prefix == "" || rel == s.prefix || strings.HasPrefix(rel, s.prefix+"/") {
		return true, true
	}
	return false, strings.HasPrefix(s.prefix, rel+"/")
}

func (s *searcher) search(ctx context.Context, id crypto.ID, dir string) ([]hit, error) {
	k := memoKey{id, dir}
	if h, ok := s.memo[k]; ok {
		return h, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := s.l.LoadTree(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id, err)
	}
	var hits []hit
	for _, n := range t.Nodes {
		p := path.Join(dir, string(n.Name))
		inside, descend := s.within(p)
		if inside && s.m.match(p, string(n.Name)) {
			hits = append(hits, hit{path: p, v: version(&n)})
		}
		if descend && n.Type == tree.Dir && n.Subtree != nil {
			below, err := s.search(ctx, *n.Subtree, p)
			if err != nil {
				return nil, err
			}
			hits = append(hits, below...)
		}
	}
	s.memo[k] = hits
	return hits, nil
}

func version(n *tree.Node) Version {
	h := sha256.New()
	fmt.Fprintf(h, "%d|%d|%d|%s|", n.Type, n.Size, n.ModTime, n.LinkTarget)
	for _, r := range n.Content {
		h.Write(r.ID[:])
		fmt.Fprintf(h, "%d|%t|", r.Size, r.Hole)
	}
	if n.Subtree != nil {
		h.Write(n.Subtree[:])
	}
	return Version{Type: n.Type.String(), Size: n.Size, ModTime: time.Unix(0, n.ModTime).UTC(), key: string(h.Sum(nil))}
}
