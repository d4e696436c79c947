package archiver_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

// write makes a file and its folders.
func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// removeKeepingTimes removes path and gives its folder back its times, so
// the source compares equal to a restore that never held path.
func removeKeepingTimes(t *testing.T, path string) {
	t.Helper()
	parent := filepath.Dir(path)
	fi, err := os.Stat(parent)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(parent, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// specialTree is a generated tree with every kind of entry, plus what the
// filter cases below leave out or keep.
func specialTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(src, treegen.Options{Seed: 5, Files: 24, MaxSize: 64 << 10, Special: true}); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestFilterLeavesOutWhatResticWould(t *testing.T) {
	// --exclude keeps case, as restic's does, except on Windows, where it
	// ignores case as NTFS does (Filter.Exclude; docs/windows.md).
	upperGone, upperKept := []string(nil), []string{"c.TMP"}
	if runtime.GOOS == "windows" {
		upperGone, upperKept = upperKept, upperGone
	}
	cases := []struct {
		name   string
		filter archiver.Filter
		add    map[string]string // relative path: content
		gone   []string          // relative paths the point must not hold
		kept   []string          // relative paths it must hold
	}{
		{
			name:   "exclude by name at any depth and by absolute path",
			filter: archiver.Filter{Exclude: []string{"*.tmp", "node_modules"}},
			// c.TMP, not a.TMP: that is a.tmp on Windows' file systems.
			add:  map[string]string{"a.tmp": "x", "dir000/b.tmp": "x", "web/node_modules/lib.js": "x", "web/app.js": "x", "c.TMP": "x"},
			gone: append([]string{"a.tmp", "dir000/b.tmp", "web/node_modules"}, upperGone...),
			kept: append([]string{"web/app.js"}, upperKept...),
		},
		{
			name:   "iexclude ignores case",
			filter: archiver.Filter{IExclude: []string{"*.tmp"}},
			add:    map[string]string{"a.tmp": "x", "B.TMP": "x", "c.txt": "x"},
			gone:   []string{"a.tmp", "B.TMP"},
			kept:   []string{"c.txt"},
		},
		{
			name:   "exclude-if-present, with and without a header",
			filter: archiver.Filter{IfPresent: []string{".nobackup", "MARK:coffer"}},
			add: map[string]string{"p/.nobackup": "", "p/data": "x", "q/MARK": "coffer skip", "q/data": "x",
				"r/MARK": "something else", "r/data": "x"},
			gone: []string{"p", "q"},
			kept: []string{"r/MARK", "r/data"},
		},
		{
			name:   "exclude-caches needs the signature",
			filter: archiver.Filter{Caches: true},
			add: map[string]string{"cache/CACHEDIR.TAG": archiver.CacheDirTagSignature + "\n# a cache\n", "cache/blob": "x",
				"notcache/CACHEDIR.TAG": "no signature here", "notcache/blob": "x"},
			gone: []string{"cache"},
			kept: []string{"notcache/CACHEDIR.TAG", "notcache/blob"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := specialTree(t)
			for rel, content := range tc.add {
				write(t, filepath.Join(src, rel), content)
			}
			f := tc.filter
			// Absolute patterns name the source wherever the test runs.
			if len(f.Exclude) > 0 {
				f.Exclude = append(f.Exclude, filepath.ToSlash(filepath.Join(src, "dir001")))
				tc.gone = append(tc.gone, "dir001")
			}
			filter, err := archiver.NewFilter(f)
			if err != nil {
				t.Fatal(err)
			}
			r := newRepo(t)
			res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Filter: filter})
			if err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			if _, err := restorer.Restore(t.Context(), reopen(t, r), res.Point, restorer.Options{Target: dst, Owner: os.Geteuid() == 0}); err != nil {
				t.Fatal(err)
			}
			got := treegen.Restored(dst, src)
			for _, rel := range tc.kept {
				if _, err := os.Lstat(filepath.Join(got, rel)); err != nil {
					t.Errorf("%s should be in the point: %v", rel, err)
				}
			}
			for _, rel := range tc.gone {
				if _, err := os.Lstat(filepath.Join(got, rel)); err == nil {
					t.Errorf("%s should have been left out", rel)
				}
			}
			// Everything else, every kind of entry, is as it was.
			for _, rel := range tc.gone {
				if _, err := os.Lstat(filepath.Join(src, rel)); err == nil {
					removeKeepingTimes(t, filepath.Join(src, rel))
				}
			}
			if diffs, _ := treegen.Diff(src, got); len(diffs) > 0 {
				t.Errorf("the rest of the tree differs after a restore:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

func TestNewFilterRefusesMalformedPatterns(t *testing.T) {
	for _, f := range []archiver.Filter{
		{Exclude: []string{"docs/*.tmp"}}, // relative with a separator: ambiguous
		{IExclude: []string{"[a-"}},
		{IfPresent: []string{":header"}},
		{IfPresent: []string{"a/b"}},
	} {
		if _, err := archiver.NewFilter(f); err == nil {
			t.Errorf("NewFilter(%+v) accepted it", f)
		}
	}
}

func TestDryRunWritesNothingAndCountsWhatWouldBeStored(t *testing.T) {
	src := specialTree(t)
	var r *repository.Repository
	var res, real *archiver.Result
	var read []string
	for attempt := 1; ; attempt++ {
		unchanged := ancestorsUnchanged(t, src)
		r = newRepoOn(t, mem.New(fmt.Sprintf("%s-%d", t.Name(), attempt)))
		before := objects(t, r.Backend(), "")
		var mu sync.Mutex
		read = nil
		var err error
		res, err = archiver.Backup(t.Context(), r, []string{src}, archiver.Options{DryRun: true, Reading: func(p string, isNew bool) {
			mu.Lock()
			defer mu.Unlock()
			if !isNew {
				t.Errorf("%s reported as changed with no parent", p)
			}
			read = append(read, p)
		}})
		if err != nil {
			t.Fatal(err)
		}
		if after := objects(t, r.Backend(), ""); !slices.Equal(before, after) {
			t.Fatalf("a dry run wrote to the repository: %d objects before, %d after", len(before), len(after))
		}
		real, err = archiver.Backup(t.Context(), reopen(t, r), []string{src}, archiver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if unchanged() || attempt == 10 {
			break
		}
		// Another program changed a folder above src (such as /tmp)
		// between the two backups: their roots may differ there alone.
	}
	d, s := res.Point.Summary, real.Point.Summary
	if res.Point.ID != "" || d.Files != s.Files || d.Bytes != s.Bytes || d.BytesRead != s.BytesRead || d.BytesNew != s.BytesNew {
		t.Errorf("dry run %+v (ID %q), real backup %+v: want the same counts and no ID", d, res.Point.ID, s)
	}
	if int64(len(read)) == 0 || res.Point.Tree != real.Point.Tree {
		t.Errorf("dry run read %d files and built tree %s; the backup built %s", len(read), res.Point.Tree, real.Point.Tree)
	}
	// Against the stored point, a dry run would read nothing.
	again, err := archiver.Backup(t.Context(), reopen(t, r), []string{src}, archiver.Options{DryRun: true, Parent: real.Point})
	if err != nil {
		t.Fatal(err)
	}
	if again.Point.Summary.BytesRead != 0 {
		t.Errorf("a dry run after the backup would read %d bytes; want 0", again.Point.Summary.BytesRead)
	}
}
