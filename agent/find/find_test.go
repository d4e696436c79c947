package find_test

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/find"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

var fastKDF = &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}

func TestFindAcrossPoints(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(src, treegen.Options{Seed: 9, Files: 40, MaxSize: 20 << 10, Special: true}); err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(t.Context(), mem.New(t.Name()), []byte("correct horse battery staple"), repository.Options{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	var points []find.Point
	backup := func() {
		res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		points = append(points, find.Point{ID: res.Point.ID, Time: res.Point.Time, Tree: res.Point.Tree})
	}
	backup()
	if err := os.WriteFile(filepath.Join(src, "empty"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	backup()
	backup()
	root := filepath.ToSlash(treegen.Restored(string(filepath.Separator), src)) // as the point names it (/C/… on Windows)
	// Point paths use / on every OS: take them apart with package path, not
	// filepath (whose Dir and Base split at \ on Windows).

	t.Run("versions newest first", func(t *testing.T) {
		ms, err := find.Find(t.Context(), r, points, find.Options{Pattern: "empty"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || ms[0].Path != root+"/empty" || len(ms[0].Versions) != 2 {
			t.Fatalf("matches %+v", ms)
		}
		v := ms[0].Versions
		if v[0].Size != 1 || len(v[0].Points) != 2 || v[0].Points[0].ID != points[2].ID || v[0].Points[1].ID != points[1].ID {
			t.Errorf("newest version %+v", v[0])
		}
		if v[1].Size != 0 || len(v[1].Points) != 1 || v[1].Points[0].ID != points[0].ID {
			t.Errorf("oldest version %+v", v[1])
		}
	})
	for _, tc := range []struct {
		name     string
		o        find.Options
		ok       func(path string) bool
		min      int
		symlinks bool // needs the symlinks treegen makes
	}{
		{"glob", find.Options{Pattern: "file00*.txt"}, func(p string) bool { return strings.HasPrefix(path.Base(p), "file00") }, 10, false},
		{"ignore case", find.Options{Pattern: "FILE00*.TXT", IgnoreCase: true}, func(p string) bool { return strings.HasPrefix(path.Base(p), "file00") }, 10, false},
		{"whole path", find.Options{Pattern: root + "/dir000/*"}, func(p string) bool { return path.Dir(p) == root+"/dir000" }, 1, false},
		{"under a path", find.Options{Pattern: "*", Path: root + "/dir000"}, func(p string) bool { return strings.HasPrefix(p, root+"/dir000") }, 2, false},
		{"under a path as the machine writes it", find.Options{Pattern: "*", Path: filepath.Join(src, "dir000")}, func(p string) bool { return strings.HasPrefix(p, root+"/dir000") }, 2, false},
		{"symlinks too", find.Options{Pattern: "*link*"}, func(p string) bool { return strings.Contains(path.Base(p), "link") }, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.symlinks && !symlinksWork(t) {
				t.Skip("this system makes no symlink that Lstat sees as one (Windows without the symlink privilege, or wine 8, whose links resolve nowhere), so the points hold only the hard links")
			}
			ms, err := find.Find(t.Context(), r, points, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) < tc.min {
				t.Errorf("%d matches, want at least %d", len(ms), tc.min)
			}
			for _, m := range ms {
				if !tc.ok(m.Path) {
					t.Errorf("unexpected match %s", m.Path)
				}
				// Which name of a hard-linked file is stored as the file
				// and which as the link may differ between backups.
				if strings.HasPrefix(path.Base(m.Path), "hardlink-") {
					continue
				}
				if len(m.Versions) != 1 || len(m.Versions[0].Points) != 3 {
					t.Errorf("%s: an unchanged path should have one version in 3 points: %+v", m.Path, m.Versions)
				}
			}
		})
	}
	if _, err := find.Find(t.Context(), r, points, find.Options{Pattern: "["}); err == nil {
		t.Error("a malformed pattern was accepted")
	}
}

// symlinksWork says whether a symlink made here is one to Lstat.
func symlinksWork(t *testing.T) bool {
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink("target", link); err != nil {
		return false
	}
	fi, err := os.Lstat(link)
	return err == nil && fi.Mode()&os.ModeSymlink != 0
}

func TestPointPath(t *testing.T) {
	for in, want := range map[string]string{
		"/home/ann/docs": "/home/ann/docs",
		`C:\Users\ann`:   "/C/Users/ann",
		"c:/Users/ann":   "/c/Users/ann",
		"C:":             "/C",
		`home\ann`:       "home/ann",
		"C:relative":     "C:relative",
		"/C/Users":       "/C/Users",
	} {
		if got := find.PointPath(in); got != want {
			t.Errorf("PointPath(%q) = %q, want %q", in, got, want)
		}
	}
}
