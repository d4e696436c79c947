//go:build unix

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/treegen"
)

// filterTree is a generated tree with every kind of entry, plus what each
// backup option leaves out.
func filterTree(t *testing.T, base string) string {
	t.Helper()
	src := filepath.Join(base, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(src, treegen.Options{Seed: 9, Files: 24, MaxSize: 32 << 10, Special: true}); err != nil {
		t.Fatal(err)
	}
	for rel, content := range map[string]string{
		"scratch.tmp":           "x",
		"SHOUT.LOG":             "x",
		"web/node_modules/a.js": "x",
		"web/app.js":            "x",
		"private/.nobackup":     "",
		"private/secret.txt":    "x",
		"cache/CACHEDIR.TAG":    archiver.CacheDirTagSignature + "\n",
		"cache/blob":            "x",
		"other/kept.txt":        "x",
	} {
		p := filepath.Join(src, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func repoObjects(t *testing.T, repo string) []string {
	t.Helper()
	var names []string
	filepath.Walk(repo, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	return names
}

func TestBackupOptionsLeaveOutAsResticDoesAndDryRunWritesNothing(t *testing.T) {
	repo, _, cache := setup(t)
	base := t.TempDir()
	src := filterTree(t, base)
	excludes := filepath.Join(base, "excludes")
	os.WriteFile(excludes, []byte("# build output\nnode_modules\n\n"), 0o644)
	list := filepath.Join(base, "files")
	os.WriteFile(list, []byte("# what to back up\n"+src+"\n"+filepath.Join(base, "nothing-*")+"\n"), 0o644)
	os.WriteFile(filepath.Join(base, "nothing-else"), []byte("listed by a glob"), 0o644)
	flags := []string{"--repo", repo, "--cache-dir", cache, "--files-from", list,
		"--exclude", "*.tmp", "--iexclude", "*.log", "--exclude-file", excludes,
		"--exclude-if-present", ".nobackup", "--exclude-caches", "--one-file-system"}

	before := repoObjects(t, repo)
	dry := coffer(t, nil, append([]string{"backup", "--dry-run", "--json"}, flags...)...)
	if dry.code != 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	if after := repoObjects(t, repo); !slices.Equal(before, after) {
		t.Fatalf("the dry run wrote to the repository:\nbefore %v\nafter  %v", before, after)
	}
	var sum dryRunSummary
	if err := json.Unmarshal([]byte(dry.out), &sum); err != nil {
		t.Fatalf("dry run JSON: %v\n%s", err, dry.out)
	}
	if !sum.DryRun || sum.BytesNew == 0 || len(sum.Read) == 0 {
		t.Errorf("dry run summary %+v: want the files it would read and the bytes it would add", sum)
	}
	var read []string
	for _, f := range sum.Read {
		if f.Status != "new" {
			t.Errorf("%s is %q on a first backup, want new", f.Path, f.Status)
		}
		read = append(read, f.Path)
	}

	real := coffer(t, nil, append([]string{"backup", "--tag", "nightly"}, flags...)...)
	if real.code != 0 {
		t.Fatalf("backup: %+v", real)
	}
	id := strings.TrimSpace(real.out)
	ls := coffer(t, nil, "ls", "--json", "--repo", repo, id)
	if ls.code != 0 {
		t.Fatalf("ls: %+v", ls)
	}
	var stored []string
	for _, l := range strings.Split(strings.TrimSpace(ls.out), "\n") {
		var e struct{ Path string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("ls --json line %q: %v", l, err)
		}
		stored = append(stored, e.Path)
	}
	has := func(list []string, rel string) bool { return slices.Contains(list, filepath.Join(src, rel)) }
	for _, rel := range []string{"scratch.tmp", "SHOUT.LOG", "web/node_modules", "private", "cache"} {
		if has(stored, rel) || has(read, rel) {
			t.Errorf("%s was backed up or would be read; the options leave it out", rel)
		}
	}
	for _, rel := range []string{"web/app.js", "other/kept.txt"} {
		if !has(stored, rel) || !has(read, rel) {
			t.Errorf("%s is missing from the point or the dry run's list", rel)
		}
	}
	if !slices.Contains(stored, filepath.Join(base, "nothing-else")) {
		t.Errorf("the glob in --files-from did not add %s", filepath.Join(base, "nothing-else"))
	}
	// The rest of the tree, every kind of entry, restores as it was.
	dst := t.TempDir()
	if r := coffer(t, nil, "restore", "--repo", repo, id, "--target", dst, "--include", filepath.Join(src, "other")); r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	if diffs, _ := treegen.Diff(filepath.Join(src, "other"), filepath.Join(treegen.Restored(dst, src), "other")); len(diffs) > 0 {
		t.Errorf("restored other/ differs: %v", diffs)
	}
	pts := coffer(t, nil, "points", "--repo", repo, "--tag", "nightly")
	if pts.code != 0 || !strings.Contains(pts.out, id[:12]) || !strings.Contains(pts.out, "nightly") {
		t.Errorf("points --tag nightly: %+v", pts)
	}
}

func TestBackupOptionsRefuseMistakesWithUsageErrors(t *testing.T) {
	repo, src, cache := setup(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--exclude", "docs/*.txt"}, "**/"},
		{[]string{"--exclude-file", "/does/not/exist"}, "--exclude-file"},
		{[]string{"--exclude-if-present", ":x"}, "file name"},
		{[]string{"--limit-upload", "-1"}, "KiB/s"},
		{[]string{"--files-from", "/does/not/exist"}, "--files-from"},
	} {
		args := append([]string{"backup", "--repo", repo, "--cache-dir", cache, src}, tc.args...)
		r := coffer(t, nil, args...)
		if r.code != 2 || !strings.Contains(r.err, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %q", tc.args, r.code, r.err, tc.want)
		}
	}
}

func TestLimitUploadStillBacksUp(t *testing.T) {
	repo, src, cache := setup(t)
	r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, "--limit-upload", "10240", src)
	if r.code != 0 {
		t.Fatalf("backup --limit-upload: %+v", r)
	}
}

func TestListFilesAndUploadLimit(t *testing.T) {
	got, err := scanLines(strings.NewReader("# comment\n\n  /srv/share  \n/home/ann\r\n#/not/this\n"))
	if err != nil || !slices.Equal(got, []string{"/srv/share", "/home/ann"}) {
		t.Errorf("scanLines = %q, %v", got, err)
	}
	for _, tc := range []struct {
		kib     int
		wantBps float64 // 0: no limiter
		wantErr bool
	}{
		{0, 0, false},
		{100, 100 * 1024, false},
		{-5, 0, true},
	} {
		b := backupFilterFlags{limitUpload: tc.kib}
		lim, err := b.uploadLimiter()
		switch {
		case tc.wantErr && err == nil, !tc.wantErr && err != nil:
			t.Errorf("--limit-upload %d: err %v", tc.kib, err)
		case tc.wantBps == 0 && lim != nil, tc.wantBps != 0 && (lim == nil || float64(lim.Limit()) != tc.wantBps):
			t.Errorf("--limit-upload %d: limiter %v, want %v B/s", tc.kib, lim, tc.wantBps)
		}
	}
}
