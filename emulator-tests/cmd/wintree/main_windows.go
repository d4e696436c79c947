// Command wintree makes and compares folder trees with Windows specifics
// for the Windows lane (emulator-tests/winlane), from inside Windows (or
// wine): paths longer than MAX_PATH, Unicode names, read-only, hidden and
// system attributes, creation and write times to 100 ns, empty files and
// folders, and a file another process keeps writing.
//
//	wintree make DIR            fill DIR (which must not exist)
//	wintree write FILE          append numbered lines to FILE until stdin closes
//	wintree verify SRC RESTORED compare, one line per difference, exit 1 if any
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/windows"
)

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "make":
		err = makeTree(os.Args[2])
	case "write":
		err = write(os.Args[2])
	case "verify":
		if len(os.Args) != 4 {
			usage()
		}
		var diffs []string
		diffs, err = verify(os.Args[2], os.Args[3])
		for _, d := range diffs {
			fmt.Println(d)
		}
		if err == nil && len(diffs) > 0 {
			os.Exit(1)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wintree:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: wintree make DIR | write FILE | verify SRC RESTORED")
	os.Exit(2)
}

// GrowingFile is the file `wintree write` keeps appending to while the
// backup reads it; verify accepts any prefix of it.
const GrowingFile = `open\growing.log`

// The times set on times\precise.txt: both have a non-zero 100 ns digit.
var (
	preciseWrite    = time.Date(2024, 5, 6, 7, 8, 9, 123456700, time.UTC)
	preciseCreation = time.Date(2023, 1, 2, 3, 4, 5, 765432100, time.UTC)
)

type entry struct {
	path    string // relative, with backslashes
	dir     bool
	content []byte
	attrs   uint32 // FILE_ATTRIBUTE_* to set, 0 for none
	times   bool   // set preciseWrite and preciseCreation
}

func spec() []entry {
	rng := rand.New(rand.NewPCG(15, 15))
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	// Six folders of 48 characters: the file's full path is well past
	// MAX_PATH (260) whatever the root.
	long := "long"
	for i := range 6 {
		long += fmt.Sprintf(`\%02d-a-folder-name-of-forty-eight-characters-xxx`, i)
	}
	return []entry{
		{path: long, dir: true},
		{path: long + `\deep file past MAX_PATH.txt`, content: []byte("a path longer than 260 characters\r\n")},
		{path: `unicode\naïve café – 日本語.txt`, content: []byte("unicode name\r\n")},
		{path: `unicode\Ελληνικά`, dir: true},
		{path: `unicode\Ελληνικά\😀 emoji.txt`, content: []byte("an emoji outside the BMP, a surrogate pair in UTF-16\r\n")},
		{path: `attrs\readonly.txt`, content: []byte("read-only\r\n"), attrs: windows.FILE_ATTRIBUTE_READONLY},
		{path: `attrs\hidden.txt`, content: []byte("hidden\r\n"), attrs: windows.FILE_ATTRIBUTE_HIDDEN},
		{path: `attrs\system.txt`, content: []byte("system\r\n"), attrs: windows.FILE_ATTRIBUTE_SYSTEM},
		{path: `attrs\all.txt`, content: []byte("read-only, hidden, system, archive\r\n"),
			attrs: windows.FILE_ATTRIBUTE_READONLY | windows.FILE_ATTRIBUTE_HIDDEN | windows.FILE_ATTRIBUTE_SYSTEM | windows.FILE_ATTRIBUTE_ARCHIVE},
		{path: `attrs\hidden folder`, dir: true, attrs: windows.FILE_ATTRIBUTE_HIDDEN},
		{path: `attrs\hidden folder\inside.txt`, content: []byte("in a hidden folder\r\n")},
		{path: `times\precise.txt`, content: []byte("times to 100 ns\r\n"), times: true},
		{path: `empty\empty.txt`, content: []byte{}},
		{path: `empty\empty folder`, dir: true},
		{path: `big\random.bin`, content: big},
		{path: `open`, dir: true},
	}
}

func makeTree(root string) error {
	if _, err := os.Lstat(root); err == nil {
		return fmt.Errorf("%s exists; make fills a new folder", root)
	}
	es := spec()
	for _, e := range es {
		p := filepath.Join(root, e.path)
		if e.dir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, e.content, 0o644); err != nil {
			return err
		}
	}
	// Times and attributes last: writing a file would change them.
	for _, e := range es {
		p := filepath.Join(root, e.path)
		if e.times {
			if err := setTimes(p, preciseCreation, preciseWrite); err != nil {
				return err
			}
		}
		if e.attrs != 0 {
			if err := setAttrs(p, e.attrs); err != nil {
				return err
			}
		}
	}
	// Read back what was set, so a file system that cannot keep them says
	// so here rather than as a restore difference.
	for _, e := range es {
		p := filepath.Join(root, e.path)
		d, err := attrData(p)
		if err != nil {
			return err
		}
		// Windows (and wine) add ARCHIVE to a new file on their own.
		const set = windows.FILE_ATTRIBUTE_READONLY | windows.FILE_ATTRIBUTE_HIDDEN | windows.FILE_ATTRIBUTE_SYSTEM
		if e.attrs != 0 && d.FileAttributes&set != e.attrs&set {
			return fmt.Errorf("%s: set attributes %s, read back %s: this file system does not keep them", e.path, attrString(e.attrs), attrString(d.FileAttributes))
		}
		if e.times && !filetime(d.LastWriteTime).Equal(preciseWrite) {
			return fmt.Errorf("%s: set write time %v, read back %v: this file system does not keep 100 ns", e.path, preciseWrite, filetime(d.LastWriteTime))
		}
	}
	return nil
}

func setTimes(p string, creation, write time.Time) error {
	name, err := windows.UTF16PtrFromString(p)
	if err != nil {
		return err
	}
	h, err := windows.CreateFile(name, windows.FILE_WRITE_ATTRIBUTES, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE,
		nil, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer windows.CloseHandle(h)
	c := windows.NsecToFiletime(creation.UnixNano())
	w := windows.NsecToFiletime(write.UnixNano())
	if err := windows.SetFileTime(h, &c, &w, &w); err != nil {
		return fmt.Errorf("set times of %s: %w", p, err)
	}
	return nil
}

func setAttrs(p string, attrs uint32) error {
	name, err := windows.UTF16PtrFromString(p)
	if err != nil {
		return err
	}
	if err := windows.SetFileAttributes(name, attrs); err != nil {
		return fmt.Errorf("set attributes of %s: %w", p, err)
	}
	return nil
}

func attrData(p string) (*syscall.Win32FileAttributeData, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	d, ok := fi.Sys().(*syscall.Win32FileAttributeData)
	if !ok {
		return nil, fmt.Errorf("%s: no Windows attribute data", p)
	}
	return d, nil
}

func filetime(ft syscall.Filetime) time.Time { return time.Unix(0, ft.Nanoseconds()).UTC() }

// checkedAttrs are the attributes a restore must give back.
const checkedAttrs = windows.FILE_ATTRIBUTE_READONLY | windows.FILE_ATTRIBUTE_HIDDEN |
	windows.FILE_ATTRIBUTE_SYSTEM | windows.FILE_ATTRIBUTE_ARCHIVE | windows.FILE_ATTRIBUTE_DIRECTORY

func attrString(a uint32) string {
	var s []string
	for _, n := range []struct {
		bit  uint32
		name string
	}{{windows.FILE_ATTRIBUTE_READONLY, "read-only"}, {windows.FILE_ATTRIBUTE_HIDDEN, "hidden"},
		{windows.FILE_ATTRIBUTE_SYSTEM, "system"}, {windows.FILE_ATTRIBUTE_ARCHIVE, "archive"},
		{windows.FILE_ATTRIBUTE_DIRECTORY, "directory"}} {
		if a&n.bit != 0 {
			s = append(s, n.name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "+")
}

// write appends numbered lines to file, sharing it for reading only, as a
// log writer does, until stdin closes. It prints "writing" once the first
// line is on disk.
func write(file string) error {
	name, err := windows.UTF16PtrFromString(file)
	if err != nil {
		return err
	}
	h, err := windows.CreateFile(name, windows.GENERIC_WRITE, windows.FILE_SHARE_READ, nil,
		windows.CREATE_ALWAYS, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		return fmt.Errorf("open %s for writing: %w", file, err)
	}
	f := os.NewFile(uintptr(h), file)
	defer f.Close()
	done := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).WriteTo(discard{})
		close(done)
	}()
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(f, "line %08d of a log another process is writing\r\n", i); err != nil {
			return err
		}
		if i == 0 {
			fmt.Println("writing")
		}
		select {
		case <-done:
			return nil
		case <-time.After(time.Millisecond):
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// verify compares the tree at src with its restore: every entry there,
// of the same kind, content, attributes and, for files, write and
// creation times to 100 ns.
func verify(src, restored string) ([]string, error) {
	var diffs []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		q := filepath.Join(restored, rel)
		a, err := attrData(p)
		if err != nil {
			return err
		}
		b, err := attrData(q)
		if errors.Is(err, fs.ErrNotExist) {
			diffs = append(diffs, fmt.Sprintf("%s: missing from the restore", rel))
			return nil
		} else if err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: %v", rel, err))
			return nil
		}
		if a.FileAttributes&checkedAttrs != b.FileAttributes&checkedAttrs {
			diffs = append(diffs, fmt.Sprintf("%s: attributes %s, restored %s", rel, attrString(a.FileAttributes), attrString(b.FileAttributes)))
		}
		if d.IsDir() {
			return nil
		}
		ca, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		cb, err := os.ReadFile(q)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: restored but unreadable: %v", rel, err))
			return nil
		}
		if rel == GrowingFile {
			// Read while being written: any prefix of what is there now is
			// what the file held at some moment of the backup.
			if !bytes.HasPrefix(ca, cb) {
				diffs = append(diffs, fmt.Sprintf("%s: restored %d bytes that are not a prefix of the %d written", rel, len(cb), len(ca)))
			}
			return nil
		}
		if !bytes.Equal(ca, cb) {
			diffs = append(diffs, fmt.Sprintf("%s: content differs (%d bytes, restored %d)", rel, len(ca), len(cb)))
		}
		if wa, wb := filetime(a.LastWriteTime), filetime(b.LastWriteTime); !wa.Equal(wb) {
			diffs = append(diffs, fmt.Sprintf("%s: write time %s, restored %s", rel, wa.Format(time.RFC3339Nano), wb.Format(time.RFC3339Nano)))
		}
		if ca, cb := filetime(a.CreationTime), filetime(b.CreationTime); !ca.Equal(cb) {
			diffs = append(diffs, fmt.Sprintf("%s: creation time %s, restored %s", rel, ca.Format(time.RFC3339Nano), cb.Format(time.RFC3339Nano)))
		}
		return nil
	})
	return diffs, err
}
