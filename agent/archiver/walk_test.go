package archiver

import (
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/agent/tree"
)

func TestMatchOld(t *testing.T) {
	nodes := func(names ...string) []tree.Node {
		out := make([]tree.Node, len(names))
		for i, n := range names {
			out[i].Name = []byte(n)
		}
		return out
	}
	entries := func(names ...string) []entry {
		out := make([]entry, len(names))
		for i, n := range names {
			out[i].name = n
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		now, old []string
		want     []int32
	}{
		{"same", []string{"a", "b", "c"}, []string{"a", "b", "c"}, []int32{0, 1, 2}},
		{"no parent entries", []string{"a", "b"}, nil, []int32{-1, -1}},
		{"all new", []string{"d", "e"}, []string{"a", "b"}, []int32{-1, -1}},
		{"some gone, some new", []string{"a", "c", "e"}, []string{"b", "c", "d", "e"}, []int32{-1, 1, 3}},
		{"byte order, not locale", []string{"B", "a", "é"}, []string{"B", "a", "é"}, []int32{0, 1, 2}},
		{"prefixes", []string{"ab", "abc"}, []string{"a", "abc", "abcd"}, []int32{-1, 1}},
		{"nothing listed", nil, []string{"a"}, []int32{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := matchOld(entries(tc.now...), nodes(tc.old...))
			if !slices.Equal(got, tc.want) {
				t.Errorf("matchOld(%q, %q) = %v, want %v", tc.now, tc.old, got, tc.want)
			}
		})
	}
}
