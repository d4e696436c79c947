//go:build unix

package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/repository"
)

func TestPositionalsReadTheUseLine(t *testing.T) {
	for _, tc := range []struct {
		use  string
		want []string
	}{
		{"restore --repo REPO POINT|latest --target DIR", []string{"POINT"}},
		{"diff --repo REPO POINT1 POINT2", []string{"POINT1", "POINT2"}},
		{"stats --repo REPO [POINT]", []string{"POINT"}},
		{"backup [--repo REPO] [PATH...]", []string{"PATH..."}},
		{"jobs VAULT [--machine M] [--type T] [--status S] [--since TIME|DURATION] [--limit N]", []string{"VAULT"}},
		{"delete VAULT MACHINE POINT --pin PIN", []string{"VAULT", "MACHINE", "POINT"}},
		{"list VAULT [--status pending|approved|executed|failed|rejected|expired]", []string{"VAULT"}},
		{"find --repo REPO PATTERN [--point ID]… [--path PATH]", []string{"PATTERN"}},
		{"set VAULT [--recipient EMAIL]... [--digest=true|false] [--security-features=true|false --pin PIN]", []string{"VAULT"}},
		{"points [--repo REPO] [--host HOST] [--tag TAG] [--path PATH] [--latest N]", nil},
	} {
		if got := positionals(tc.use); !slices.Equal(got, tc.want) {
			t.Errorf("positionals(%q) = %q, want %q", tc.use, got, tc.want)
		}
	}
}

func TestChoicesInUse(t *testing.T) {
	got := choicesInUse("set VAULT [--digest=true|false] [--status pending|approved] [--since TIME|DURATION]")
	if !slices.Equal(got["digest"], []string{"true", "false"}) || !slices.Equal(got["status"], []string{"pending", "approved"}) || got["since"] != nil {
		t.Errorf("choicesInUse = %v", got)
	}
}

// complete runs `coffer __complete ARGS…` as the shell scripts do, and
// returns the candidates without their descriptions, and the directive.
func complete(t *testing.T, env []string, args ...string) (values []string, directive string) {
	t.Helper()
	r := coffer(t, env, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %v: %+v", args, r)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
		if strings.HasPrefix(l, ":") {
			directive = l
			continue
		}
		v, _, _ := strings.Cut(l, "\t")
		values = append(values, v)
	}
	return values, directive
}

func TestCompletionOfPointsAndEnumFlags(t *testing.T) {
	repo, src, cache := setup(t)
	var ids []string
	for range 2 {
		r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, "--force", src)
		if r.code != 0 {
			t.Fatalf("backup: %+v", r)
		}
		ids = append(ids, strings.TrimSpace(r.out))
	}
	// Without a passphrase too: the IDs are the objects' names.
	for _, env := range [][]string{nil, {"COFFER_PASSPHRASE="}} {
		got, dir := complete(t, env, "restore", "--repo", repo, "")
		want := []string{"latest", ids[0][:12], ids[1][:12]}
		slices.Sort(want[1:])
		if !slices.Equal(got, want) || dir != ":4" {
			t.Errorf("restore POINT with env %v: %q %s, want %q and no file completion (:4)", env, got, dir, want)
		}
	}
	got, _ := complete(t, nil, "diff", "--repo", repo, ids[0][:12], ids[1][:3])
	if !slices.Contains(got, ids[1][:12]) || slices.Contains(got, "latest") && !strings.HasPrefix("latest", ids[1][:3]) {
		t.Errorf("diff's second POINT from prefix %q: %q", ids[1][:3], got)
	}
	long := ids[0][:14]
	if got, _ := complete(t, nil, "dump", "--repo", repo, long); !slices.Equal(got, []string{ids[0]}) {
		t.Errorf("a prefix longer than the short ID completes to the full ID: %q", got)
	}
	if got, _ := complete(t, nil, "find", "--repo", repo, "--point", ""); !slices.Contains(got, ids[0][:12]) {
		t.Errorf("find --point: %q", got)
	}

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"restore", "--conflict", ""}, []string{"copy", "overwrite", "skip"}},
		{[]string{"admin", "jobs", "v", "--status", ""}, []string{"in_progress", "completed", "completed_with_warnings", "failed", "cancelled"}},
		{[]string{"admin", "approvals", "list", "v", "--status", ""}, []string{"pending", "approved", "executed", "failed", "rejected", "expired"}},
		{[]string{"forget", "--group-by", ""}, []string{"host,paths", "host", "paths"}},
	} {
		got, _ := complete(t, nil, tc.args...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
	// Paths to back up are the local file system's.
	if _, dir := complete(t, nil, "backup", ""); dir != ":0" {
		t.Errorf("backup PATH: directive %s, want file completion (:0)", dir)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if r := coffer(t, nil, "completion", shell); r.code != 0 || !strings.Contains(r.out, "__complete") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, r.code, len(r.out))
		}
	}
}

func TestPointFilterAsResticSnapshots(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 12, 1, h, 0, 0, 0, time.UTC) }
	points := []*repository.Point{
		{ID: "a", Time: at(1), Hostname: "ann", Paths: []string{"/home"}, Tags: []string{"daily"}},
		{ID: "b", Time: at(2), Hostname: "ann", Paths: []string{"/home", "/srv"}, Tags: []string{"daily", "db"}},
		{ID: "c", Time: at(3), Hostname: "bob", Paths: []string{"/home"}},
		{ID: "d", Time: at(4), Hostname: "ann", Paths: []string{"/home"}, Tags: []string{"weekly"}},
		{ID: "e", Time: at(5), Hostname: "ann", Paths: []string{"/home"}, Tags: []string{"daily"}},
	}
	for _, tc := range []struct {
		name string
		f    pointFilter
		want string
	}{
		{"none", pointFilter{}, "abcde"},
		{"host", pointFilter{hosts: []string{"bob"}}, "c"},
		{"either host", pointFilter{hosts: []string{"bob", "ann"}}, "abcde"},
		{"tag", pointFilter{tags: []string{"daily"}}, "abe"},
		{"both tags", pointFilter{tags: []string{"daily,db"}}, "b"},
		{"either tag", pointFilter{tags: []string{"db", "weekly"}}, "bd"},
		{"path", pointFilter{paths: []string{"/srv"}}, "b"},
		{"all paths", pointFilter{paths: []string{"/home", "/srv"}}, "b"},
		{"latest per host and paths", pointFilter{latest: 1}, "bce"},
		{"latest 2 of a host", pointFilter{latest: 2, hosts: []string{"ann"}}, "bde"},
		{"latest after tag", pointFilter{latest: 1, tags: []string{"daily"}}, "be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f.apply(points)
			if err != nil {
				t.Fatal(err)
			}
			var ids string
			for _, p := range got {
				ids += p.ID
			}
			if ids != tc.want {
				t.Errorf("got %s, want %s", ids, tc.want)
			}
		})
	}
	if _, err := (&pointFilter{latest: -1}).apply(points); err == nil {
		t.Error("--latest -1 accepted")
	}
}
