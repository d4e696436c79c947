//go:build unix

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/find"
	"github.com/coffer-backup/coffer/agent/repostats"
	"github.com/coffer-backup/coffer/agent/treediff"
	"github.com/coffer-backup/coffer/agent/treegen"
)

// diff, stats and find on two points of a tree with every file kind.
func TestDiffStatsAndFindThroughTheCLI(t *testing.T) {
	repo, src, cache := setup(t)
	if err := treegen.Make(src, treegen.Options{Seed: 3, Files: 20, MaxSize: 30 << 10, Special: true}); err != nil {
		t.Fatal(err)
	}
	backup := func() string {
		r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src)
		if r.code != 0 {
			t.Fatalf("backup: %+v", r)
		}
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		return lines[len(lines)-1]
	}
	p1 := backup()
	os.WriteFile(filepath.Join(src, "notes.md"), []byte("# notes, longer now\n"), 0o644)
	os.Remove(filepath.Join(src, "empty"))
	p2 := backup()
	jsonOf := func(v any, args ...string) string {
		t.Helper()
		r := coffer(t, nil, append(args, "--repo", repo, "--json")...)
		if r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
		if err := json.Unmarshal([]byte(r.out), v); err != nil {
			t.Fatalf("%v printed %q: %v", args, r.out, err)
		}
		return r.out
	}

	var d diffJSON
	jsonOf(&d, "diff", p1[:8], "latest")
	kinds := map[string]string{}
	for _, c := range d.Changes {
		kinds[strings.TrimPrefix(c.Path, src+"/")] = c.Kind
	}
	if kinds["notes.md"] != treediff.Modified || kinds["empty"] != treediff.Removed || d.Summary.Removed != 1 || d.To != p2 {
		t.Fatalf("diff: %+v", d)
	}
	if r := coffer(t, nil, "diff", "--repo", repo, p1, p2); r.code != 0 || !strings.Contains(r.out, "- file") || !strings.Contains(r.out, "M file") {
		t.Fatalf("diff as text: %+v", r)
	}

	var st repostats.Stats
	jsonOf(&st, "stats")
	if len(st.Points) != 2 || st.Repository.Points != 2 || st.Repository.DedupRatio < 1.5 || st.Points[1].UniqueStoredSize >= st.Points[1].StoredSize {
		t.Fatalf("stats: %+v", st)
	}
	jsonOf(&st, "stats", "latest")
	if len(st.Points) != 1 || st.Points[0].ID != p2 {
		t.Fatalf("stats latest: %+v", st.Points)
	}

	var ms []find.Match
	jsonOf(&ms, "find", "notes.md")
	if len(ms) != 1 || len(ms[0].Versions) != 2 || ms[0].Versions[0].Points[0].ID != p2 {
		t.Fatalf("find: %+v", ms)
	}
	jsonOf(&ms, "find", "NOTES.MD", "-i", "--point", p1[:8])
	if len(ms) != 1 || len(ms[0].Versions) != 1 || ms[0].Versions[0].Points[0].ID != p1 {
		t.Fatalf("find -i --point: %+v", ms)
	}
	if r := coffer(t, nil, "find", "--repo", repo, "["); r.code != cli.ExitUsage {
		t.Fatalf("find with a malformed pattern: %+v", r)
	}
}
