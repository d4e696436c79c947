package forget

import (
	"slices"
	"testing"
)

func TestSelection(t *testing.T) {
	points := []Point{
		{ID: "a", Host: "fs01", Paths: []string{"/srv/data"}, Tags: []string{"daily"}},
		{ID: "b", Host: "fs01", Paths: []string{"/srv/data", "/etc"}, Tags: []string{"daily", "pre-upgrade"}},
		{ID: "c", Host: "fs02", Paths: []string{"/srv/data"}},
		{ID: "d", Host: "laptop", Paths: []string{"/home/ann"}, Tags: []string{"pre-upgrade"}},
	}
	for _, tc := range []struct {
		name string
		sel  Selection
		want []string
	}{
		{"nothing given takes every point", Selection{}, []string{"a", "b", "c", "d"}},
		{"one host", Selection{Hosts: []string{"fs01"}}, []string{"a", "b"}},
		{"either of two hosts", Selection{Hosts: []string{"fs02", "laptop"}}, []string{"c", "d"}},
		{"a tag", Selection{Tags: ParseTags([]string{"pre-upgrade"})}, []string{"b", "d"}},
		{"all tags of a list", Selection{Tags: ParseTags([]string{"daily,pre-upgrade"})}, []string{"b"}},
		{"any of two lists", Selection{Tags: ParseTags([]string{"daily,pre-upgrade", "pre-upgrade"})}, []string{"b", "d"}},
		{"a path, typed with a trailing slash", Selection{Paths: []string{"/srv/data/"}}, []string{"a", "b", "c"}},
		{"every path given", Selection{Paths: []string{"/srv/data", "/etc"}}, []string{"b"}},
		{"host and tag together", Selection{Hosts: []string{"fs01"}, Tags: ParseTags([]string{"pre-upgrade"})}, []string{"b"}},
		{"a host with no points", Selection{Hosts: []string{"nas"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range tc.sel.Select(points) {
				got = append(got, p.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("selected %v, want %v", got, tc.want)
			}
		})
	}
	if got := ParseTags([]string{" a , b ", "", ","}); len(got) != 1 || !slices.Equal(got[0], []string{"a", "b"}) {
		t.Errorf("ParseTags = %q", got)
	}
}
