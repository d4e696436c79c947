package archiver_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
)

// textTree writes 40 compressible text files in 4 folders.
func textTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"invoice", "branch", "office", "quarterly", "report", "total", "customer", "the", "and", "of"}
	for d := range 4 {
		dir := filepath.Join(src, fmt.Sprintf("dept%d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 10 {
			var b strings.Builder
			for b.Len() < 4<<10+r.IntN(16<<10) {
				b.WriteString(words[r.IntN(len(words))])
				b.WriteByte(' ')
			}
			ext := []string{".txt", ".csv"}[f%2]
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%d%s", f, ext)), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return src
}

// files lists the tree's regular files, sorted.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// encrypt overwrites every step-th file with random bytes of its size, as
// ransomware does, and renames it to name+ext unless ext is empty.
func encrypt(t *testing.T, root string, step int, ext string) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	for i, p := range files(t, root) {
		if i%step != 0 {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, fi.Size())
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if ext == "" {
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p+ext, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBackupCountsChangesAgainstItsParent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, root string)
		want   archiver.Changes
	}{
		{"nothing", func(*testing.T, string) {}, archiver.Changes{ParentFiles: 40, Files: 40}},
		{"an edit and a touch", func(t *testing.T, root string) {
			fs := files(t, root)
			f, err := os.OpenFile(fs[0], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("one more line\n")
			f.Close()
			b, _ := os.ReadFile(fs[1])
			os.WriteFile(fs[1], b, 0o644) // same content: not a change
		}, archiver.Changes{ParentFiles: 40, Files: 40, Changed: 1}},
		{"a new folder of new kinds of files", func(t *testing.T, root string) {
			os.Mkdir(filepath.Join(root, "new"), 0o755)
			for i := range 5 {
				os.WriteFile(filepath.Join(root, "new", fmt.Sprintf("n%d.pdf", i)), []byte("x"), 0o644)
			}
			os.WriteFile(filepath.Join(root, "dept0", "summary.pdf"), []byte("y"), 0o644)
		}, archiver.Changes{ParentFiles: 40, Files: 46, NewExtension: 1, TopNewExtension: 1}},
		{"a quarter deleted", func(t *testing.T, root string) {
			for i, p := range files(t, root) {
				if i%4 == 0 {
					os.Remove(p)
				}
			}
		}, archiver.Changes{ParentFiles: 40, Files: 30, Deleted: 10}},
		{"a quarter encrypted in place", func(t *testing.T, root string) { encrypt(t, root, 4, "") },
			archiver.Changes{ParentFiles: 40, Files: 40, Changed: 10, Incompressible: 10}},
		{"a quarter encrypted and renamed", func(t *testing.T, root string) { encrypt(t, root, 4, ".locked") },
			archiver.Changes{ParentFiles: 40, Files: 40, Renamed: 10, Incompressible: 10, NewExtension: 10, TopNewExtension: 10, Deleted: 10}},
		{"a quarter encrypted under a replaced extension", func(t *testing.T, root string) {
			for i, p := range files(t, root) {
				if i%4 == 0 {
					b := make([]byte, 8<<10)
					rand.NewChaCha8([32]byte{byte(i)}).Read(b)
					os.WriteFile(strings.TrimSuffix(p, filepath.Ext(p))+".crypt", b, 0o644)
					os.Remove(p)
				}
			}
		}, archiver.Changes{ParentFiles: 40, Files: 40, Renamed: 10, Incompressible: 10, NewExtension: 10, TopNewExtension: 10, Deleted: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := textTree(t)
			r := newRepo(t)
			first, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if first.Changes.ParentFiles != 0 {
				t.Errorf("first backup compared with a parent: %+v", first.Changes)
			}
			tc.change(t, src)
			r = reopen(t, r)
			next, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Parent: first.Point})
			if err != nil {
				t.Fatal(err)
			}
			if next.Changes != tc.want {
				t.Errorf("changes\n got %+v\nwant %+v", next.Changes, tc.want)
			}
		})
	}
}

// Media and archives never compressed; encryption still rewrites every
// chunk of them at the same size, which an edit never does.
func TestBackupCountsFilesOverwrittenWhole(t *testing.T) {
	random := func(seed byte, n int) []byte {
		b := make([]byte, n)
		rand.NewChaCha8([32]byte{seed}).Read(b)
		return b
	}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string)
		want   int64
	}{
		{"an append", func(t *testing.T, p string) {
			f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(random(2, 4096))
			f.Close()
		}, 0},
		{"an edit in the middle", func(t *testing.T, p string) {
			f, _ := os.OpenFile(p, os.O_WRONLY, 0)
			f.WriteAt(random(3, 512), 300<<10)
			f.Close()
		}, 0},
		{"encrypted", func(t *testing.T, p string) { os.WriteFile(p, random(4, 1<<20), 0o644) }, 1},
		{"re-encoded to another size", func(t *testing.T, p string) { os.WriteFile(p, random(5, 900<<10), 0o644) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := textTree(t)
			media := filepath.Join(src, "dept0", "video.mp4")
			if err := os.WriteFile(media, random(1, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			r := newRepo(t)
			first, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tc.change(t, media)
			next, err := archiver.Backup(t.Context(), reopen(t, r), []string{src}, archiver.Options{Parent: first.Point})
			if err != nil {
				t.Fatal(err)
			}
			if c := next.Changes; c.Changed != 1 || c.Overwritten != tc.want || c.Incompressible != 0 {
				t.Errorf("changes %+v; want 1 changed, %d overwritten whole, none newly incompressible", c, tc.want)
			}
		})
	}
}
