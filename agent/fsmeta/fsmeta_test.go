package fsmeta

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fakeInfo is a FileInfo with no platform stat behind it, as an fs.FS
// implementation would return.
type fakeInfo struct {
	mode fs.FileMode
	size int64
	mod  time.Time
}

func (f fakeInfo) Name() string       { return "fake" }
func (f fakeInfo) Size() int64        { return f.size }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return f.mod }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return nil }

func TestFromFileInfoWithoutStat(t *testing.T) {
	mod := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	tests := []struct {
		mode fs.FileMode
		kind Kind
		unix uint32
	}{
		{0o644, File, 0o644},
		{fs.ModeDir | fs.ModeSticky | 0o777, Dir, 0o1777},
		{fs.ModeSymlink | 0o777, Symlink, 0o777},
		{fs.ModeNamedPipe | 0o600, FIFO, 0o600},
		{fs.ModeSocket | 0o755, Socket, 0o755},
		{fs.ModeDevice | fs.ModeCharDevice | 0o666, Device, 0o666},
		{fs.ModeDevice | 0o660, Device, 0o660},
		{fs.ModeIrregular, Other, 0},
		{fs.ModeSetuid | fs.ModeSetgid | 0o755, File, 0o6755},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			m := FromFileInfo(fakeInfo{mode: tt.mode, size: 42, mod: mod})
			if m.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v", m.Kind, tt.kind)
			}
			if m.Size != 42 || !m.ModTime.Equal(mod) {
				t.Errorf("Size/ModTime = %d/%v", m.Size, m.ModTime)
			}
			if m.Mode != tt.unix && m.Mode != 0 { // Windows reports no mode
				t.Errorf("Mode = %o, want %o", m.Mode, tt.unix)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{File: "file", Dir: "dir", Symlink: "symlink", FIFO: "fifo", Socket: "socket", Device: "device", Other: "other", 99: "kind(99)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestIDNamesCachesFailures(t *testing.T) {
	calls := 0
	c := &idNames{lookup: func(id string) (string, error) {
		calls++
		if id == "7" {
			return "seven", nil
		}
		return "", fs.ErrNotExist
	}}
	for range 3 {
		if got := c.name(7); got != "seven" {
			t.Fatalf("name(7) = %q", got)
		}
		if got := c.name(8); got != "" {
			t.Fatalf("name(8) = %q", got)
		}
	}
	if calls != 2 {
		t.Errorf("lookups = %d, want 2 (cached)", calls)
	}
}

// A file made sparse with MakeSparse has its hole found by DataExtents, on
// every OS whose file system can tell (the Linux tests cover SEEK_HOLE's
// edge cases; this one runs on Windows too).
func TestDataExtentsOfASparseFile(t *testing.T) {
	const mib = 1 << 20
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte("A"), mib)); err != nil {
		t.Fatal(err)
	}
	if err := MakeSparse(f, 10*mib); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("B"), mib), 9*mib); err != nil {
		t.Fatal(err)
	}
	exts, err := DataExtents(f, 10*mib)
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) == 1 && exts[0] == (Extent{0, 10 * mib}) {
		t.Skip("this file system reports no holes (wine 8 answers FSCTL_QUERY_ALLOCATED_RANGES with ERROR_NOT_SUPPORTED)")
	}
	if want := []Extent{{0, mib}, {9 * mib, mib}}; !slices.Equal(exts, want) {
		t.Errorf("DataExtents = %v, want %v", exts, want)
	}
	if exts, err := DataExtents(f, 0); err != nil || exts != nil {
		t.Errorf("DataExtents of size 0 = %v, %v; want none", exts, err)
	}
}
