// Package treegen makes random folder trees with every kind of entry Coffer
// backs up, and compares two trees, for the engine's round-trip tests.
package treegen

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/agent/fsmeta"
)

// Options shape a generated tree.
type Options struct {
	Seed     uint64
	Files    int  // regular files, spread over folders
	MaxSize  int  // largest file
	BigFiles int  // files of several chunks (about 3 MiB)
	Special  bool // symlinks, hard links, sparse file, odd names, xattrs, empty dir/file
}

// Make fills dir with a deterministic random tree.
func Make(dir string, o Options) error {
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	dirs := []string{dir}
	for i := range max(1, o.Files/8) {
		parent := dirs[rng.IntN(len(dirs))]
		d := filepath.Join(parent, fmt.Sprintf("dir%03d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		dirs = append(dirs, d)
	}
	base := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for i := range o.Files {
		d := dirs[rng.IntN(len(dirs))]
		size := rng.IntN(o.MaxSize + 1)
		p := filepath.Join(d, fmt.Sprintf("file%04d.txt", i))
		if err := os.WriteFile(p, content(rng, size), 0o644); err != nil {
			return err
		}
		os.Chmod(p, fs.FileMode(0o600+rng.IntN(0o177)))
		mt := base.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
		if err := os.Chtimes(p, mt, mt); err != nil {
			return err
		}
	}
	for i := range o.BigFiles {
		p := filepath.Join(dir, fmt.Sprintf("big%d.bin", i))
		b := make([]byte, 3<<20+rng.IntN(1<<20))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			return err
		}
	}
	if !o.Special {
		return nil
	}
	// Empty file and folder, odd names.
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "empty-dir"), 0o700)
	os.WriteFile(filepath.Join(dir, "naïve café – 日本語.txt"), []byte("unicode name"), 0o644)
	if runtime.GOOS == "linux" {
		// Names need not be valid UTF-8.
		os.WriteFile(filepath.Join(dir, "bad-\xff\xfe-name"), []byte("latin-1 name"), 0o644)
	}
	os.WriteFile(filepath.Join(dir, " leading space and trailing dot."), []byte("x"), 0o644)
	// Symlinks, one dangling, one to a folder.
	os.Symlink("file0000.txt", filepath.Join(dir, "link-to-file"))
	os.Symlink("/nonexistent/target", filepath.Join(dir, "dangling-link"))
	os.Symlink("dir000", filepath.Join(dir, "link-to-dir"))
	// Hard links.
	hl := filepath.Join(dir, "hardlink-a")
	os.WriteFile(hl, []byte("the same file under two names\n"), 0o644)
	os.Link(hl, filepath.Join(dirs[len(dirs)-1], "hardlink-b"))
	// Sparse: data, a 16 MiB hole, data, and a trailing hole.
	if f, err := os.Create(filepath.Join(dir, "sparse.img")); err == nil {
		f.Write(bytes.Repeat([]byte("head"), 1024))
		// MakeSparse sets the final size and, on Windows, marks the file
		// sparse first: NTFS would otherwise allocate the zeros.
		fsmeta.MakeSparse(f, 24<<20)
		f.WriteAt(bytes.Repeat([]byte("tail"), 1024), 16<<20)
		f.Close()
	}
	// Extended attributes, where the file system has them.
	fsmeta.WriteXattrs(filepath.Join(dir, "empty"), []fsmeta.Xattr{{Name: "user.coffer.test", Value: []byte("value\x00binary")}})
	// Ownership, restored when running as root.
	if os.Geteuid() == 0 {
		os.Lchown(filepath.Join(dir, "naïve café – 日本語.txt"), 1234, 5678)
	}
	// Folder permissions and times are restored too.
	os.Chmod(filepath.Join(dir, "empty-dir"), 0o750)
	dt := base.Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, "empty-dir"), dt, dt)
	return nil
}

// content is compressible text-like data, sometimes random.
func content(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	if rng.IntN(4) == 0 {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	words := []string{"coffer ", "backup ", "azure ", "branch ", "office ", "restore ", "\n", "func ", "{ ", "} "}
	for i := 0; i < n; {
		i += copy(b[i:], words[rng.IntN(len(words))])
	}
	return b
}

// Diff compares the trees at a and b: types, content, permissions,
// modification times, link targets, hard-link identity, holes and xattrs.
// It returns one line per difference.
func Diff(a, b string) ([]string, error) {
	var diffs []string
	inodesA, inodesB := map[uint64]string{}, map[uint64]string{}
	err := filepath.WalkDir(a, func(pa string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, pa)
		pb := filepath.Join(b, rel)
		ma, err := fsmeta.Lstat(pa)
		if err != nil {
			return err
		}
		mb, err := fsmeta.Lstat(pb)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: missing in restore", rel))
			return nil
		}
		if ma.Kind != mb.Kind {
			diffs = append(diffs, fmt.Sprintf("%s: kind %v, restored as %v", rel, ma.Kind, mb.Kind))
			return nil
		}
		if ma.Kind != fsmeta.Symlink && ma.Mode != mb.Mode {
			diffs = append(diffs, fmt.Sprintf("%s: mode %o, restored %o", rel, ma.Mode, mb.Mode))
		}
		if os.Geteuid() == 0 && (ma.UID != mb.UID || ma.GID != mb.GID) {
			diffs = append(diffs, fmt.Sprintf("%s: owner %d:%d, restored %d:%d", rel, ma.UID, ma.GID, mb.UID, mb.GID))
		}
		if rel != "." && !ma.ModTime.Equal(mb.ModTime) {
			diffs = append(diffs, fmt.Sprintf("%s: mtime %v, restored %v", rel, ma.ModTime, mb.ModTime))
		}
		switch ma.Kind {
		case fsmeta.Symlink:
			ta, _ := os.Readlink(pa)
			tb, _ := os.Readlink(pb)
			if ta != tb {
				diffs = append(diffs, fmt.Sprintf("%s: link to %q, restored to %q", rel, ta, tb))
			}
		case fsmeta.File:
			ca, _ := os.ReadFile(pa)
			cb, _ := os.ReadFile(pb)
			if !bytes.Equal(ca, cb) {
				diffs = append(diffs, fmt.Sprintf("%s: content differs (%d vs %d bytes)", rel, len(ca), len(cb)))
			}
			if ma.Nlink > 1 {
				if first, ok := inodesA[ma.Inode]; ok {
					if inodesB[mb.Inode] != first {
						diffs = append(diffs, fmt.Sprintf("%s: not restored as a hard link of %s", rel, first))
					}
				} else {
					inodesA[ma.Inode], inodesB[mb.Inode] = rel, rel
				}
			}
			if blocks(pa) < ma.Size/512/2 && blocks(pb) > blocks(pa)*2+64 {
				diffs = append(diffs, fmt.Sprintf("%s: holes not restored (%d blocks, source %d)", rel, blocks(pb), blocks(pa)))
			}
		}
		xa, _ := fsmeta.ReadXattrs(pa)
		xb, _ := fsmeta.ReadXattrs(pb)
		if !slices.EqualFunc(xa, xb, func(x, y fsmeta.Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) }) {
			diffs = append(diffs, fmt.Sprintf("%s: xattrs %v, restored %v", rel, xa, xb))
		}
		return nil
	})
	return diffs, err
}

// Restored returns where a restore into target puts the backed-up path
// src: below target by its absolute path, a Windows volume ("C:") by its
// letter ("C"), as the archiver names it in the point.
func Restored(target, src string) string {
	vol := filepath.VolumeName(src)
	return filepath.Join(target, strings.TrimSuffix(vol, ":"), src[len(vol):])
}
