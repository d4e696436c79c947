//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/treegen"
)

func TestDumpWritesFilesAndFoldersAsBackedUp(t *testing.T) {
	base := t.TempDir()
	repo, src, cache := filepath.Join(base, "repo"), filepath.Join(base, "src"), filepath.Join(base, "cache")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: 21, Files: 40, MaxSize: 100 << 10, BigFiles: 1, Special: true}); err != nil {
		t.Fatal(err)
	}
	if r := coffer(t, nil, "init", "--repo", repo); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("backup: %+v", r)
	}
	dump := func(path string) run {
		return coffer(t, nil, "dump", "--repo", repo, "--cache-dir", cache, "latest", path)
	}

	names := []string{"big0.bin", "naïve café – 日本語.txt", "sparse.img", "empty", "hardlink-a"}
	// The second name of the hard link, somewhere below.
	filepath.Walk(src, func(p string, _ os.FileInfo, _ error) error {
		if filepath.Base(p) == "hardlink-b" {
			rel, _ := filepath.Rel(src, p)
			names = append(names, rel)
		}
		return nil
	})
	for _, name := range names {
		want, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if r := dump(filepath.Join(src, name)); r.code != 0 || r.out != string(want) {
			t.Errorf("dump %s: exit %d, %d bytes, want %d (%s)", name, r.code, len(r.out), len(want), r.err)
		}
	}

	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("skipped the folder dump: no tar to extract it with")
	}
	r := dump(src)
	if r.code != 0 {
		t.Fatalf("dump of a folder: %+v", r.err)
	}
	archive, dst := filepath.Join(base, "src.tar"), filepath.Join(base, "dst")
	os.WriteFile(archive, []byte(r.out), 0o644)
	os.Mkdir(dst, 0o755)
	if out, err := exec.Command("tar", "-x", "-p", "--xattrs", "--xattrs-include=*", "-f", archive, "-C", dst).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v %s", err, out)
	}
	diffs, err := treegen.Diff(src, filepath.Join(dst, src))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		// The tar stream writes holes as zeros; everything else must match.
		if !strings.HasPrefix(d, "sparse.img: holes not restored") {
			t.Errorf("through dump | tar -x: %s", d)
		}
	}

	// A path that is not in the point is a failure (1), like a point that
	// does not exist; a symlink is a mistake in the call (2).
	for _, c := range []struct {
		path, says string
		code       int
	}{
		{filepath.Join(src, "link-to-file"), "symlink", 2},
		{filepath.Join(src, "no-such-file"), "not in the point", 1},
	} {
		if r := dump(c.path); r.code != c.code || !strings.Contains(r.err, c.says) {
			t.Errorf("dump %s: exit %d %q, want exit %d saying %q", c.path, r.code, r.err, c.code, c.says)
		}
	}
}
