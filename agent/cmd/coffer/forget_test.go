//go:build unix

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func TestForgetAndPruneThroughTheCLI(t *testing.T) {
	repo, src, cache := setup(t)
	for i, content := range []string{"one\n", "two\n", "three\n"} {
		os.WriteFile(filepath.Join(src, "notes.md"), []byte(strings.Repeat(content, 1000+i)), 0o644)
		if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
			t.Fatalf("backup %d: %+v", i, r)
		}
	}
	points := func() int {
		r := coffer(t, nil, "points", "--repo", repo, "--json")
		var list []json.RawMessage
		if r.code != 0 || json.Unmarshal([]byte(r.out), &list) != nil {
			t.Fatalf("points: %+v", r)
		}
		return len(list)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no rule", nil, cli.ExitUsage, "no keep rule given"},
		{"bad duration", []string{"--keep-within", "3x"}, cli.ExitUsage, "unknown unit"},
		{"bad group", []string{"--keep-last", "1", "--group-by", "user"}, cli.ExitUsage, "--group-by"},
		{"bad max-unused", []string{"--keep-last", "1", "--prune", "--max-unused", "5"}, cli.ExitUsage, "percentage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := coffer(t, nil, append([]string{"forget", "--repo", repo}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.err, tc.says) {
				t.Fatalf("forget %v: %+v, want exit %d saying %q", tc.args, r, tc.code, tc.says)
			}
		})
	}

	r := coffer(t, nil, "forget", "--repo", repo, "--keep-last", "1", "--dry-run", "--json")
	var res forgetJSON
	if r.code != 0 || json.Unmarshal([]byte(r.out), &res) != nil {
		t.Fatalf("forget --dry-run: %+v", r)
	}
	if len(res.Groups) != 1 || len(res.Groups[0].Keep) != 1 || len(res.Groups[0].Remove) != 2 || res.Removed != 0 {
		t.Fatalf("dry run decided %+v", res)
	}
	if n := points(); n != 3 {
		t.Fatalf("a dry run left %d points", n)
	}

	r = coffer(t, nil, "forget", "--repo", repo, "--keep-last", "1", "--prune", "--max-unused", "0%")
	if r.code != 0 || !strings.Contains(r.out, "Removed 2 points.") || !strings.Contains(r.out, "freed") {
		t.Fatalf("forget --prune: %+v", r)
	}
	if n := points(); n != 1 {
		t.Fatalf("%d points after forget, want 1", n)
	}
	if r := coffer(t, nil, "check", "--repo", repo, "--read-data"); r.code != 0 {
		t.Fatalf("check after prune: %+v", r)
	}
	dst := t.TempDir()
	if r := coffer(t, nil, "restore", "--repo", repo, "latest", "--target", dst); r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, src, "notes.md")); string(b) != strings.Repeat("three\n", 1002) {
		t.Fatalf("restored the wrong notes.md (%d bytes)", len(b))
	}

	r = coffer(t, nil, "prune", "--repo", repo, "--json")
	var st struct{ PacksDeleted, PacksRepacked int }
	if r.code != 0 || json.Unmarshal([]byte(r.out), &st) != nil || st.PacksDeleted+st.PacksRepacked != 0 {
		t.Fatalf("second prune: %+v", r)
	}
}

// --host, --tag and --path choose which points forget judges; the others
// are left alone whatever the keep rules say.
func TestForgetJudgesOnlyTheSelectedPoints(t *testing.T) {
	repo, src, cache := setup(t)
	for i, b := range []struct{ host, tag string }{{"fs01", "weekly"}, {"fs01", "weekly"}, {"fs01", ""}, {"fs02", "weekly"}} {
		os.WriteFile(filepath.Join(src, "notes.md"), []byte(strings.Repeat("x", 100+i)), 0o644)
		args := []string{"backup", "--repo", repo, "--cache-dir", cache, "--host", b.host, src}
		if b.tag != "" {
			args = append(args, "--tag", b.tag)
		}
		if r := coffer(t, nil, args...); r.code != 0 {
			t.Fatalf("backup %d: %+v", i, r)
		}
	}
	r := coffer(t, nil, "forget", "--repo", repo, "--keep-last", "1", "--host", "fs01", "--tag", "weekly", "--path", src+"/", "--json")
	var res forgetJSON
	if r.code != 0 || json.Unmarshal([]byte(r.out), &res) != nil {
		t.Fatalf("forget: %+v", r)
	}
	// Of fs01's two weekly points the older goes; fs01's untagged point and
	// fs02's are not judged.
	if res.Removed != 1 || len(res.Groups) != 1 || len(res.Groups[0].Keep) != 1 || res.Groups[0].Keep[0].Host != "fs01" {
		t.Fatalf("forget decided %+v", res)
	}
	r = coffer(t, nil, "points", "--repo", repo, "--json")
	var left []struct {
		Host string   `json:"host"`
		Tags []string `json:"tags"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.out), &left) != nil || len(left) != 3 {
		t.Fatalf("points after forget: %+v", r)
	}

	r = coffer(t, nil, "forget", "--repo", repo, "--keep-last", "1", "--host", "fs0l")
	if r.code != cli.ExitFailed || !strings.Contains(r.err, "no point matches") {
		t.Fatalf("forget with a misspelt host: %+v, want exit %d saying no point matches", r, cli.ExitFailed)
	}
}
