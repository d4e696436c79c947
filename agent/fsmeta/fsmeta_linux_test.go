package fsmeta

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const mib = 1 << 20

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLstatKinds(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, []byte("hello"))
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("file", link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink("no/such/target", dangling); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		path string
		kind Kind
		mode uint32
		size int64 // -1: don't check
	}{
		{"regular file", file, File, 0o644, 5},
		{"directory", sub, Dir, 0o750, -1},
		{"symlink not followed", link, Symlink, 0o777, int64(len("file"))},
		{"dangling symlink", dangling, Symlink, 0o777, int64(len("no/such/target"))},
		{"fifo", fifo, FIFO, 0o600, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The umask could strip bits requested at creation; set them.
			if tt.kind != Symlink {
				if err := os.Chmod(tt.path, os.FileMode(tt.mode)); err != nil {
					t.Fatal(err)
				}
			}
			m, err := Lstat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v", m.Kind, tt.kind)
			}
			if m.Mode != tt.mode {
				t.Errorf("Mode = %o, want %o", m.Mode, tt.mode)
			}
			if tt.size >= 0 && m.Size != tt.size {
				t.Errorf("Size = %d, want %d", m.Size, tt.size)
			}
			if m.Inode == 0 || m.Nlink == 0 || m.ModTime.IsZero() || m.ChangeTime.IsZero() {
				t.Errorf("identity/times missing: %+v", m)
			}
			if m.UID != uint32(os.Geteuid()) {
				t.Errorf("UID = %d, want %d", m.UID, os.Geteuid())
			}
			if m.WinAttrs != 0 || !m.BirthTime.IsZero() {
				t.Errorf("Windows/birth fields set on Linux: %+v", m)
			}
		})
	}

	// FromFileInfo on a DirEntry's Info must agree with Lstat.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		got := FromFileInfo(fi)
		want, err := Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != want.Kind || got.Inode != want.Inode || !got.ModTime.Equal(want.ModTime) || got.Mode != want.Mode {
			t.Errorf("%s: FromFileInfo %+v != Lstat %+v", e.Name(), got, want)
		}
	}
}

func TestLstatMissing(t *testing.T) {
	_, err := Lstat(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

func TestLstatUserName(t *testing.T) {
	m, err := Lstat(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && (m.User != "root" || m.Group != "root") {
		// Only root's names are predictable on a test machine.
		t.Errorf("User/Group = %q/%q, want root/root", m.User, m.Group)
	}
}

func TestLstatDevice(t *testing.T) {
	m, err := Lstat("/dev/null")
	if err != nil {
		t.Skip("no /dev/null:", err)
	}
	if m.Kind != Device || m.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("/dev/null: Kind %v Rdev %#x, want device 1:3", m.Kind, m.Rdev)
	}
}

func TestHardLinks(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, []byte("x"))
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	ma, err := Lstat(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := Lstat(b)
	if err != nil {
		t.Fatal(err)
	}
	if ma.Inode != mb.Inode || ma.Dev != mb.Dev {
		t.Errorf("identity differs: %d/%d vs %d/%d", ma.Dev, ma.Inode, mb.Dev, mb.Inode)
	}
	if ma.Nlink != 2 || mb.Nlink != 2 {
		t.Errorf("Nlink = %d, %d, want 2", ma.Nlink, mb.Nlink)
	}
}

func TestChangeTimeMovesOnChmod(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	writeFile(t, path, nil)
	before, err := Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	// ctime comes from the kernel's coarse clock (a few ms), so retry for a
	// while rather than assume one tick has passed.
	deadline := time.Now().Add(2 * time.Second)
	for mode := os.FileMode(0o600); ; mode ^= 0o040 {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		after, err := Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if after.ChangeTime.After(before.ChangeTime) {
			if !after.ModTime.Equal(before.ModTime) {
				t.Errorf("chmod changed ModTime")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ChangeTime stayed %v after chmod", before.ChangeTime)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestApplyModeAndTimes(t *testing.T) {
	dir := t.TempDir()
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	tests := []struct {
		name string
		make func(path string) error
		mode uint32
	}{
		{"file", func(p string) error { return os.WriteFile(p, []byte("data"), 0o600) }, 0o640},
		{"setuid file", func(p string) error { return os.WriteFile(p, []byte("data"), 0o600) }, 0o4755},
		{"sticky dir", func(p string) error { return os.Mkdir(p, 0o700) }, 0o1777},
		{"setgid dir", func(p string) error { return os.Mkdir(p, 0o700) }, 0o2750},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o600) }, 0o620},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			if err := Apply(path, Meta{Mode: tt.mode, ModTime: mtime}, ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			m, err := Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if m.Mode != tt.mode {
				t.Errorf("Mode = %o, want %o", m.Mode, tt.mode)
			}
			if !m.ModTime.Equal(mtime) {
				t.Errorf("ModTime = %v, want %v", m.ModTime, mtime)
			}
		})
	}
}

func TestApplyOwner(t *testing.T) {
	if !IsRoot() {
		t.Skip("chown needs root")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	writeFile(t, path, nil)
	link := filepath.Join(dir, "link")
	if err := os.Symlink("f", link); err != nil {
		t.Fatal(err)
	}
	// setuid must survive: chown clears it, so Apply must chmod afterwards.
	want := Meta{UID: 1234, GID: 5678, Mode: 0o4750}
	if err := Apply(path, want, ApplyOptions{Owner: true}); err != nil {
		t.Fatal(err)
	}
	m, err := Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.UID != 1234 || m.GID != 5678 || m.Mode != 0o4750 {
		t.Errorf("got uid %d gid %d mode %o, want 1234 5678 4750", m.UID, m.GID, m.Mode)
	}

	// lchown: the link changes hands, its target does not.
	if err := Apply(link, Meta{UID: 4321, GID: 8765}, ApplyOptions{Owner: true}); err != nil {
		t.Fatal(err)
	}
	ml, err := Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if ml.UID != 4321 || ml.GID != 8765 {
		t.Errorf("link owner %d:%d, want 4321:8765", ml.UID, ml.GID)
	}
	if mt.UID != 1234 || mt.GID != 5678 {
		t.Errorf("target owner changed to %d:%d", mt.UID, mt.GID)
	}

	// Without Owner, ownership is left alone.
	if err := Apply(path, Meta{Mode: 0o600}, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if m, _ := Lstat(path); m.UID != 1234 {
		t.Errorf("Apply without Owner changed UID to %d", m.UID)
	}
}

func TestApplySymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	writeFile(t, target, nil)
	if err := os.Chmod(target, 0o600); err != nil {
		t.Fatal(err)
	}
	targetMtime := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(target, targetMtime, targetMtime); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	linkMtime := time.Date(2020, 2, 2, 2, 2, 2, 222222222, time.UTC)
	if err := Apply(link, Meta{Kind: Symlink, Mode: 0o777, ModTime: linkMtime}, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	// A Meta that wrongly claims "file" must still not chmod the target.
	if err := Apply(link, Meta{Kind: File, Mode: 0o666, ModTime: linkMtime}, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	ml, err := Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if !ml.ModTime.Equal(linkMtime) {
		t.Errorf("link ModTime = %v, want %v", ml.ModTime, linkMtime)
	}
	mt, err := Lstat(target)
	if err != nil {
		t.Fatal(err)
	}
	if !mt.ModTime.Equal(targetMtime) || mt.Mode != 0o600 {
		t.Errorf("target changed: mode %o mtime %v", mt.Mode, mt.ModTime)
	}
}

func TestApplyWindowsMetaKeepsUnixMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	writeFile(t, path, nil)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2022, 5, 6, 7, 8, 9, 100, time.UTC)
	const archive = 0x20 // FILE_ATTRIBUTE_ARCHIVE
	if err := Apply(path, Meta{WinAttrs: archive, ModTime: mtime}, ApplyOptions{Owner: IsRoot()}); err != nil {
		t.Fatal(err)
	}
	m, err := Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Mode != 0o640 || m.UID != uint32(os.Geteuid()) {
		t.Errorf("Windows metadata changed mode/owner: %o %d", m.Mode, m.UID)
	}
	if !m.ModTime.Equal(mtime) {
		t.Errorf("ModTime = %v, want %v", m.ModTime, mtime)
	}
}

func TestApplyTriesEveryStep(t *testing.T) {
	if err := Apply(filepath.Join(t.TempDir(), "missing"), Meta{Mode: 0o600, ModTime: time.Now()}, ApplyOptions{Owner: true}); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("err = %v, want ENOENT", err)
	}
}

// xattrDir returns a temp dir where user.* xattrs work, or skips.
func xattrDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	writeFile(t, probe, nil)
	if err := unix.Lsetxattr(probe, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("user xattrs unsupported in %s: %v", dir, err)
	}
	return dir
}

func TestXattrsRoundTrip(t *testing.T) {
	dir := xattrDir(t)
	src := filepath.Join(dir, "src")
	dst := filepath.Join(dir, "dst")
	writeFile(t, src, nil)
	writeFile(t, dst, nil)
	want := []Xattr{
		{Name: "user.a", Value: []byte("alpha")},
		{Name: "user.binary", Value: []byte{0, 1, 2, 255, 0}},
		{Name: "user.empty", Value: []byte{}},
		{Name: "user.large", Value: bytes.Repeat([]byte("x"), 3000)},
	}
	if IsRoot() {
		want = append(want, Xattr{Name: "trusted.coffer", Value: []byte("root only")})
	}
	// Written in reverse to check that reading sorts.
	rev := slices.Clone(want)
	slices.Reverse(rev)
	if err := WriteXattrs(src, rev); err != nil {
		t.Fatal(err)
	}
	got, err := ReadXattrs(src)
	if err != nil {
		t.Fatal(err)
	}
	got = withoutSecurity(got)
	slices.SortFunc(want, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	if !equalXattrs(got, want) {
		t.Fatalf("ReadXattrs = %q, want %q", got, want)
	}
	if err := WriteXattrs(dst, got); err != nil {
		t.Fatal(err)
	}
	again, err := ReadXattrs(dst)
	if err != nil {
		t.Fatal(err)
	}
	if again = withoutSecurity(again); !equalXattrs(again, want) {
		t.Fatalf("copy = %q, want %q", again, want)
	}
}

func TestXattrsNone(t *testing.T) {
	dir := xattrDir(t)
	path := filepath.Join(dir, "plain")
	writeFile(t, path, nil)
	xs, err := ReadXattrs(path)
	if err != nil {
		t.Fatal(err)
	}
	if xs = withoutSecurity(xs); len(xs) != 0 {
		t.Fatalf("ReadXattrs = %q, want none", xs)
	}
	if err := WriteXattrs(path, nil); err != nil {
		t.Fatal(err)
	}
}

func TestXattrsSymlinkNotFollowed(t *testing.T) {
	dir := xattrDir(t)
	target := filepath.Join(dir, "target")
	writeFile(t, target, nil)
	if err := WriteXattrs(target, []Xattr{{Name: "user.t", Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	xs, err := ReadXattrs(link)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if x.Name == "user.t" {
			t.Fatalf("ReadXattrs followed the symlink: %q", xs)
		}
	}
	// Linux refuses user.* on symlinks; the error must come back wrapped
	// (not panic, not silently succeed on the target).
	err = WriteXattrs(link, []Xattr{{Name: "user.l", Value: []byte("v")}})
	if err == nil {
		t.Log("file system accepted user.* on a symlink")
	} else if !errors.Is(err, unix.EPERM) {
		t.Errorf("err = %v, want EPERM", err)
	}
	if xs, _ := ReadXattrs(target); len(withoutSecurity(xs)) != 1 {
		t.Errorf("target xattrs changed: %q", xs)
	}
}

func TestWriteXattrsReportsEachFailure(t *testing.T) {
	dir := xattrDir(t)
	path := filepath.Join(dir, "f")
	writeFile(t, path, nil)
	err := WriteXattrs(path, []Xattr{
		{Name: "nonamespace", Value: []byte("x")}, // no namespace prefix
		{Name: "user.ok", Value: []byte("x")},
		{Name: "bogus.ns", Value: []byte("x")},
	})
	if err == nil {
		t.Fatal("want an error for attributes outside any namespace")
	}
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("err = %v, want it to wrap EOPNOTSUPP", err)
	}
	xs, rerr := ReadXattrs(path)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if xs = withoutSecurity(xs); len(xs) != 1 || xs[0].Name != "user.ok" {
		t.Errorf("valid attribute not written after a failure: %q", xs)
	}
}

// withoutSecurity drops security.* attributes (SELinux labels) that a
// host may add on its own.
func withoutSecurity(xs []Xattr) []Xattr {
	return slices.DeleteFunc(slices.Clone(xs), func(x Xattr) bool {
		return strings.HasPrefix(x.Name, "security.")
	})
}

func equalXattrs(a, b []Xattr) bool {
	return slices.EqualFunc(a, b, func(x, y Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) })
}

// holeyFile writes 1 MiB, leaves an 8 MiB hole, writes 1 MiB.
func holeyFile(t *testing.T, path string) (*os.File, []byte, []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	a := bytes.Repeat([]byte("A"), mib)
	b := bytes.Repeat([]byte("B"), mib)
	if _, err := f.Write(a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(8*mib, io.SeekCurrent); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return f, a, b
}

func TestDataExtents(t *testing.T) {
	dir := t.TempDir()
	f, _, _ := holeyFile(t, filepath.Join(dir, "holey"))
	if _, err := f.Seek(123, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	exts, err := DataExtents(f, 10*mib)
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) == 1 && exts[0] == (Extent{0, 10 * mib}) {
		t.Skipf("file system in %s reports no holes", dir)
	}
	want := []Extent{{0, mib}, {9 * mib, mib}}
	if !slices.Equal(exts, want) {
		t.Errorf("DataExtents = %v, want %v", exts, want)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 123 {
		t.Errorf("file offset = %d after DataExtents, want 123 restored", off)
	}

	// A shorter size clips the extents to it.
	exts, err = DataExtents(f, 9*mib+100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Extent{{0, mib}, {9 * mib, 100}}; !slices.Equal(exts, want) {
		t.Errorf("clipped DataExtents = %v, want %v", exts, want)
	}
}

func TestDataExtentsEdgeCases(t *testing.T) {
	dir := t.TempDir()
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer sparse.Close()
	if err := sparse.Truncate(4 * mib); err != nil {
		t.Fatal(err)
	}
	dense := filepath.Join(dir, "dense")
	writeFile(t, dense, bytes.Repeat([]byte("d"), 10000))
	df, err := os.Open(dense)
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	empty, err := os.Create(filepath.Join(dir, "empty"))
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()

	probe, _ := DataExtents(sparse, 4*mib)
	holes := len(probe) == 0

	tests := []struct {
		name string
		f    *os.File
		size int64
		want []Extent
	}{
		{"empty", empty, 0, nil},
		{"dense", df, 10000, []Extent{{0, 10000}}},
		{"size beyond EOF", df, 20000, []Extent{{0, 10000}}},
	}
	if holes {
		tests = append(tests, struct {
			name string
			f    *os.File
			size int64
			want []Extent
		}{"fully sparse", sparse, 4 * mib, nil})
	} else {
		t.Logf("file system in %s reports no holes; fully sparse case skipped", dir)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DataExtents(tt.f, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("DataExtents = %v, want %v", got, tt.want)
			}
		})
	}

	// A closed file is an error, not a panic.
	closed, err := os.Create(filepath.Join(dir, "closed"))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if _, err := DataExtents(closed, 10); err == nil {
		t.Error("DataExtents on a closed file: want error")
	}
}

func TestSparseRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src, a, b := holeyFile(t, filepath.Join(dir, "src"))
	const size = 10 * mib
	exts, err := DataExtents(src, size)
	if err != nil {
		t.Fatal(err)
	}

	// Restore as the restorer would: final size first, then only the data.
	dstPath := filepath.Join(dir, "dst")
	dst, err := os.OpenFile(dstPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := MakeSparse(dst, size); err != nil {
		t.Fatal(err)
	}
	for _, e := range exts {
		buf := make([]byte, e.Length)
		if _, err := src.ReadAt(buf, e.Offset); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.WriteAt(buf, e.Offset); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.Sync(); err != nil {
		t.Fatal(err)
	}

	got, err := os.ReadFile(dstPath)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(a, make([]byte, 8*mib), b)
	if !bytes.Equal(got, want) {
		t.Fatalf("restored content differs (len %d, want %d)", len(got), len(want))
	}

	var st unix.Stat_t
	if err := unix.Stat(dstPath, &st); err != nil {
		t.Fatal(err)
	}
	allocated := st.Blocks * 512
	if len(exts) == 1 {
		t.Skipf("file system in %s reports no holes; allocated %d of %d bytes", dir, allocated, size)
	}
	// 2 MiB of data plus metadata; well under half the size.
	if allocated > 4*mib {
		t.Errorf("restored file allocates %d bytes of %d; holes were filled", allocated, size)
	}
}

func TestMakeSparseShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	writeFile(t, path, bytes.Repeat([]byte("z"), 1000))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := MakeSparse(f, 10); err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Size() != 10 {
		t.Errorf("size = %d, want 10", fi.Size())
	}
	f.Close()
	if err := MakeSparse(f, 10); err == nil {
		t.Error("MakeSparse on a closed file: want error")
	}
}
