//go:build unix

package treegen

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Diff is what the round-trip tests trust, so it must catch each kind of
// difference.
func TestDiffCatchesEachKindOfDifference(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	if err := Make(src, Options{Seed: 7, Files: 20, MaxSize: 4096, Special: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(dst string)
		want   string
	}{
		{"nothing", func(string) {}, ""},
		{"content", func(d string) {
			os.WriteFile(filepath.Join(d, "naïve café – 日本語.txt"), []byte("other"), 0o644)
		}, "content differs"},
		{"mode", func(d string) { os.Chmod(filepath.Join(d, "empty"), 0o600) }, "mode"},
		{"mtime", func(d string) { os.Chtimes(filepath.Join(d, "empty"), time.Now(), time.Now()) }, "mtime"},
		{"link", func(d string) {
			os.Remove(filepath.Join(d, "link-to-file"))
			os.Symlink("elsewhere", filepath.Join(d, "link-to-file"))
		}, "link to"},
		{"owner", func(d string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			os.Lchown(filepath.Join(d, "empty"), 4321, 4321)
		}, "owner"},
		{"missing", func(d string) { os.Remove(filepath.Join(d, "empty")) }, "missing"},
		{"hard link", func(d string) {
			p := filepath.Join(d, "hardlink-a")
			b, _ := os.ReadFile(p)
			fi, _ := os.Stat(p)
			os.Remove(p)
			os.WriteFile(p, b, 0o644)
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}, "hard link"},
		{"holes", func(d string) {
			p := filepath.Join(d, "sparse.img")
			b, _ := os.ReadFile(p)
			fi, _ := os.Stat(p)
			os.Remove(p)
			os.WriteFile(p, b, 0o644)
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}, "holes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst")
			if out, err := exec.Command("cp", "-a", "--sparse=always", src, dst).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			tc.change(dst)
			diffs, err := Diff(src, dst)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(diffs, "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("diffs = %q, want %q", got, tc.want)
			}
		})
	}
}
