package local

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// directReadMin is the shortest read made around the page cache. A
// restore reads most of a repository once, in spans of up to a few MiB,
// and through the cache every byte was first copied into a new cache page
// and then out of it again: on the benchmark's virtual machine that was
// 1.2 s of system time per GiB read (0.05 s direct), a third of the
// restore's CPU. Shorter reads (pack headers, small files' spans) are left
// to the cache, where read-ahead serves their neighbours.
const directReadMin = 256 << 10

// directReadChunk is the size of a direct read through Read, and of the
// buffer a range read that way holds. Ranges read whole (ReadFullInto)
// need none.
const directReadChunk = 256 << 10

var directReadBufs = sync.Pool{New: func() any { return alignedBuf(directReadChunk) }}

// directSection reads [off, end) of f, opened for direct reads, in
// aligned chunks through a pooled aligned buffer, as directWriter writes.
type directSection struct {
	f        *os.File
	off, end int64
	size     int64 // the range's length, for storage.Sized
	buf      *[]byte
	data     []byte // read from f, not yet given out
}

func newDirectSection(f *os.File, off, length int64) *directSection {
	return &directSection{f: f, off: off, end: off + length, size: length}
}

// ReadFullInto reads the whole range straight into buf (storage.FullReader),
// without the chunk buffer's copy, when buf is aligned and has the room;
// otherwise into a new aligned buffer. The range lands at buf's start.
func (s *directSection) ReadFullInto(buf []byte) ([]byte, error) {
	if len(s.data) > 0 || s.off >= s.end {
		return readFull(s, buf, s.end-s.off)
	}
	start := s.off &^ (directAlign - 1)
	skip, n := int(s.off-start), int(s.end-s.off)
	need := (skip + n + directAlign - 1) &^ (directAlign - 1)
	if cap(buf) < need || uintptr(unsafe.Pointer(unsafe.SliceData(buf[:1])))%directAlign != 0 {
		buf = *alignedBuf(max(need, cap(buf)))
	}
	if err := s.readAt(buf[:need], start, skip+n); err != nil {
		return nil, err
	}
	copy(buf[:n], buf[skip:skip+n])
	s.off = s.end
	return buf[:n], nil
}

// readFull is ReadFullInto for a range already partly read.
func readFull(r io.Reader, buf []byte, n int64) ([]byte, error) {
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Size is the range's length: storage.ReadAll reads it into one buffer.
func (s *directSection) Size() int64 { return s.size }

func (s *directSection) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		if s.off >= s.end {
			return 0, io.EOF
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	s.off += int64(n)
	return n, nil
}

// fill reads the aligned chunk holding s.off.
func (s *directSection) fill() error {
	if s.buf == nil {
		s.buf = directReadBufs.Get().(*[]byte)
	}
	start := s.off &^ (directAlign - 1)
	want := min(s.end-start, directReadChunk)
	n := min(int(want+directAlign-1)&^(directAlign-1), directReadChunk)
	if err := s.readAt((*s.buf)[:n], start, int(want)); err != nil {
		return err
	}
	s.data = (*s.buf)[s.off-start : want]
	return nil
}

// readAt fills buf (whole blocks) from the file at start, of which at
// least the first want bytes must come back: the file's last block comes
// back short, with io.EOF.
func (s *directSection) readAt(buf []byte, start int64, want int) error {
	k, err := s.f.ReadAt(buf, start)
	if errors.Is(err, syscall.EINVAL) && dropDirect(s.f) == nil {
		// Opened, but the file system refuses the direct read itself.
		k, err = s.f.ReadAt(buf, start)
	}
	if k < want {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

func (s *directSection) Close() error {
	if s.buf != nil {
		directReadBufs.Put(s.buf)
		s.buf, s.data = nil, nil
	}
	return s.f.Close()
}
