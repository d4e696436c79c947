//go:build unix

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func TestInitCompressionFlag(t *testing.T) {
	base := t.TempDir()
	for _, bad := range []string{"ultra", "MAX", ""} {
		repo := filepath.Join(base, "bad"+bad)
		r := coffer(t, nil, "init", "--repo", repo, "--compression", bad)
		if r.code != 2 || !strings.Contains(r.err, "auto, fastest, default, max") {
			t.Errorf("init --compression %q: %+v; want exit 2 and the valid modes", bad, r)
		}
		if _, err := os.Stat(repo); err == nil {
			t.Errorf("init --compression %q created the repository folder", bad)
		}
	}
	for _, mode := range []string{"auto", "fastest", "default", "max"} {
		repo := filepath.Join(base, mode)
		r := coffer(t, nil, "init", "--repo", repo, "--compression", mode)
		if r.code != 0 || !strings.Contains(r.out, "compression "+mode) {
			t.Fatalf("init --compression %s: %+v", mode, r)
		}
		if got := configShowJSON(t, repo)["compression"]; got != mode {
			t.Errorf("config show --json after init --compression %s: compression %v", mode, got)
		}
	}
	r := coffer(t, nil, "init", "--repo", filepath.Join(base, "plain"))
	if r.code != 0 || !strings.Contains(r.out, "compression auto") {
		t.Fatalf("init without --compression: %+v", r)
	}
}

func configShowJSON(t *testing.T, repo string) map[string]any {
	t.Helper()
	r := coffer(t, nil, "config", "show", "--repo", repo, "--json")
	if r.code != 0 {
		t.Fatalf("config show --json: %+v", r)
	}
	doc := decodeAll(t, r.out)[0]
	for _, p := range jsonProblems(doc, "config show") {
		t.Errorf("config show --json: %s", p)
	}
	return doc.(map[string]any)
}

func TestConfigSetCompressionForNewData(t *testing.T) {
	repo, src, cache := setup(t)
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("backup: %+v", r)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"compression"}, "a setting and its value"},
		{[]string{"compression", "max", "now"}, "a setting and its value"},
		{[]string{"chunker", "max"}, `unknown setting "chunker"`},
		{[]string{"compression", "best"}, "auto, fastest, default, max"},
	} {
		r := coffer(t, nil, append([]string{"config", "set", "--repo", repo}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.err, tc.want) {
			t.Errorf("config set %q: %+v; want exit 2 and %q", tc.args, r, tc.want)
		}
	}
	if got := configShowJSON(t, repo)["compression"]; got != "auto" {
		t.Fatalf("a refused change changed compression to %v", got)
	}
	r := coffer(t, nil, "config", "set", "--repo", repo, "compression", "max")
	if r.code != 0 || !strings.Contains(r.out, "max (was auto)") {
		t.Fatalf("config set compression max: %+v", r)
	}
	show := coffer(t, nil, "config", "show", "--repo", repo)
	if !regexp.MustCompile(`Compression\s+max`).MatchString(show.out) {
		t.Errorf("config show after the change:\n%s", show.out)
	}
	os.WriteFile(filepath.Join(src, "new.txt"), []byte(strings.Repeat("new data, compressed harder\n", 500)), 0o644)
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("backup after the change: %+v", r)
	}
	// Both points restore: the old one's data was compressed as before.
	restoresBothPoints(t, repo, cache)
	if r := coffer(t, nil, "check", "--repo", repo, "--read-data"); r.code != 0 {
		t.Fatalf("check --read-data: %+v", r)
	}
	st := coffer(t, nil, "stats", "--repo", repo, "--cache-dir", cache, "--json")
	var stats struct{ Repository struct{ Compression string } }
	if err := json.Unmarshal([]byte(st.out), &stats); err != nil || stats.Repository.Compression != "max" {
		t.Errorf("stats --json: compression %q (%v)", stats.Repository.Compression, err)
	}
	if st := coffer(t, nil, "stats", "--repo", repo, "--cache-dir", cache); !strings.Contains(st.out, "compressed with mode max") {
		t.Errorf("stats does not show the mode:\n%s", st.out)
	}
}

// restoresBothPoints checks that the repository holds two points and that
// each restores.
func restoresBothPoints(t *testing.T, repo, cache string) {
	t.Helper()
	points := coffer(t, nil, "points", "--repo", repo, "--json")
	var ps []struct{ ID string }
	if err := json.Unmarshal([]byte(points.out), &ps); err != nil || len(ps) != 2 {
		t.Fatalf("points: %v %+v", err, points)
	}
	for _, p := range ps {
		if r := coffer(t, nil, "restore", "--repo", repo, "--cache-dir", cache, p.ID, "--target", t.TempDir()); r.code != 0 {
			t.Fatalf("restore %s: %+v", p.ID[:8], r)
		}
	}
}

// rewriteConfig edits a repository's config as an older release would
// have written it.
func rewriteConfig(t *testing.T, repo string, edit func(cfg map[string]any)) {
	t.Helper()
	path := filepath.Join(repo, "config")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	b, _ = json.Marshal(cfg)
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConfigWithoutCompression opens a config written before the setting
// existed: it means auto, and setting a mode adds the field.
func TestConfigWithoutCompression(t *testing.T) {
	repo, _, _ := setup(t)
	rewriteConfig(t, repo, func(cfg map[string]any) { delete(cfg, "compression") })
	if got := configShowJSON(t, repo)["compression"]; got != "auto" {
		t.Fatalf("old config: compression %v, want auto", got)
	}
	if r := coffer(t, nil, "config", "set", "--repo", repo, "compression", "fastest"); r.code != 0 {
		t.Fatalf("config set on an old config: %+v", r)
	}
	if got := configShowJSON(t, repo)["compression"]; got != "fastest" {
		t.Fatalf("after set: compression %v", got)
	}
}

// A repository made before format 2 keeps its format (older releases
// read it) until `config set format 2`, which says what it changes; its
// points restore before and after.
func TestConfigSetFormatUpgradesAVersion1Repository(t *testing.T) {
	repo, src, cache := setup(t)
	rewriteConfig(t, repo, func(cfg map[string]any) {
		if cfg["version"] != float64(2) {
			t.Fatalf("init wrote format %v, want 2", cfg["version"])
		}
		cfg["version"] = 1
	})
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("backup to a version 1 repository: %+v", r)
	}
	for _, tc := range []struct{ value, want string }{{"3", "only upgrade is to format 2"}, {"1", "only upgrade"}} {
		if r := coffer(t, nil, "config", "set", "--repo", repo, "format", tc.value); r.code != 2 || !strings.Contains(r.err, tc.want) {
			t.Errorf("config set format %s: %+v", tc.value, r)
		}
	}
	r := coffer(t, nil, "config", "set", "--repo", repo, "format", "2")
	if r.code != 0 || !strings.Contains(r.out, "Format version 2 (was 1)") || !strings.Contains(r.out, "can no longer open") {
		t.Fatalf("config set format 2: %+v", r)
	}
	if got := configShowJSON(t, repo)["version"]; got != float64(2) {
		t.Fatalf("after the upgrade: version %v", got)
	}
	if r := coffer(t, nil, "config", "set", "--repo", repo, "format", "2"); r.code != 0 || !strings.Contains(r.out, "already") {
		t.Fatalf("a second upgrade: %+v", r)
	}
	os.WriteFile(filepath.Join(src, "after-upgrade.txt"), []byte(strings.Repeat("grouped now\n", 300)), 0o644)
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("backup after the upgrade: %+v", r)
	}
	if r := coffer(t, nil, "check", "--repo", repo, "--read-data"); r.code != 0 {
		t.Fatalf("check --read-data: %+v", r)
	}
	restoresBothPoints(t, repo, cache)
}

// A registered machine's SAS cannot replace the config: config set says so
// before asking for anything.
func TestConfigSetInAVault(t *testing.T) {
	t.Setenv("COFFER_REPOSITORY", "")
	dir := registered(t)
	for _, setting := range [][]string{{"compression", "max"}, {"format", "2"}} {
		_, err := execute(append([]string{"config", "set"}, append(setting, "--config-dir", dir)...)...)
		if err == nil || cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), "vault") {
			t.Fatalf("config set %s in a vault: %v", setting[0], err)
		}
	}
}

func TestCompressionCompletion(t *testing.T) {
	modes := []string{"auto", "fastest", "default", "max"}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"init", "--compression", ""}, modes},
		{[]string{"config", "set", ""}, []string{"compression", "format"}},
		{[]string{"config", "set", "compression", ""}, modes},
		{[]string{"config", "set", "format", ""}, []string{"2"}},
	} {
		if got, _ := complete(t, nil, tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
}
