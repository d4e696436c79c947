// Package storage is the one interface through which Coffer reads and writes
// a repository, whatever holds it: a local folder or an Azure Blob container.
// Behaviour such as retries, throttling and bounded concurrency is added by
// wrapping a Backend, never by changing one.
//
// Object names are slash-separated paths ("data/3f/3f2a…", "points/…"), the
// same in a folder and in a container, so a local repository copied into a
// container as is works as that container's repository.
package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"
)

// Errors every backend reports in these terms, wrapped with detail.
var (
	// ErrNotFound: no object by that name.
	ErrNotFound = errors.New("object not found")
	// ErrExists: Create found the name taken. Objects are never overwritten.
	ErrExists = errors.New("object already exists")
	// ErrPermission: the credentials do not allow the operation (a SAS
	// without delete permission, a read-only folder).
	ErrPermission = errors.New("permission denied")
)

// Info describes a stored object.
type Info struct {
	Name string
	Size int64
}

// Backend stores named, immutable objects.
type Backend interface {
	// Create stores data under name if, and only if, no object has that
	// name (ErrExists otherwise). The object appears whole or not at all.
	Create(ctx context.Context, name string, data []byte) error
	// Read opens length bytes of the object from offset; length < 0 reads to
	// the end.
	Read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	// Stat describes one object.
	Stat(ctx context.Context, name string) (Info, error)
	// List calls fn for every object whose name starts with prefix, in no
	// particular order, until fn returns an error.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Delete removes an object. Backups never delete; only trusted
	// maintenance (purge, passphrase change) does, with credentials that allow it.
	Delete(ctx context.Context, name string) error
	// Location names the repository for messages, without secrets.
	Location() string
}

// ReadAll reads a whole object.
func ReadAll(ctx context.Context, b Backend, name string) ([]byte, error) {
	rc, err := b.Read(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if s, ok := rc.(Sized); ok && s.Size() > 0 && s.Size() < 1<<30 {
		return readSized(rc, s.Size())
	}
	return io.ReadAll(rc)
}

// Sized is a reader from Read that knows how many bytes it will give.
// ReadAll then reads them into one buffer of that size: io.ReadAll's
// doubling copied and allocated an index file's megabytes about twice
// over, and on a virtual machine each new page of those costs a trap to
// the hypervisor.
type Sized interface {
	Size() int64
}

// FullReader is a reader from Read that fills a caller's buffer itself.
// The local backend reads long ranges around the page cache, which must
// land in memory aligned to the disk's blocks: it reads into buf from the
// block holding the range's start and moves the bytes to buf's start.
type FullReader interface {
	// ReadFullInto reads every byte the reader gives into buf's storage,
	// grown if it is too small, and returns them at its start.
	ReadFullInto(buf []byte) ([]byte, error)
}

// FullReadSlack is how much room past a range's length a FullReader needs
// in buf to use it as it is, block alignment on both ends.
const FullReadSlack = 8 << 10

// readSized reads r to its end into a buffer made for n bytes, growing it
// only if the object turns out longer. The spare bytes.MinRead let the
// buffer find the end without growing.
func readSized(r io.Reader, n int64) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(int(n) + bytes.MinRead)
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

// Spooler is a Backend that can take an object written piece by piece to
// a temporary place and named once it is whole: a local folder. A writer
// that would otherwise hold a whole pack in memory until it is stored
// spools it instead where the backend offers this (see AsSpooler).
type Spooler interface {
	// Spool starts an unnamed object that will be named below prefix.
	Spool(ctx context.Context, prefix string) (Spool, error)
}

// Spool is an object being written. Exactly one of Commit and Abort must
// be called.
type Spool interface {
	io.Writer
	// Commit makes the bytes written durable and stores them under name,
	// if no object has that name (ErrExists otherwise, and the spool is
	// dropped).
	Commit(ctx context.Context, name string) error
	// Abort drops what was written.
	Abort()
}

// PassThrough is a wrapper whose additions (retries of whole-object calls)
// a spooled write or a sweep does not need: AsSpooler and AsTempSweeper
// look through it to the backend it wraps. A wrapper that adds something
// those must not bypass (a throttle, a fault injector) does not implement
// it.
type PassThrough interface {
	PassThrough() Backend
}

// AsSpooler returns b's Spooler, looking through wrappers that implement
// PassThrough. Any other wrapper (a throttle, say) hides the Spooler, so
// that what it adds is never bypassed.
func AsSpooler(b Backend) (Spooler, bool) { return find[Spooler](b) }

// TempSweeper is a Backend that can leave temporary files behind (a local
// folder, after a crash in the middle of a write) and remove them.
type TempSweeper interface {
	// SweepTemps removes the temporary files last written before cutoff
	// and reports how many it removed.
	SweepTemps(ctx context.Context, cutoff time.Time) (int, error)
}

// AsTempSweeper returns b's TempSweeper, looking through wrappers as
// AsSpooler does.
func AsTempSweeper(b Backend) (TempSweeper, bool) { return find[TempSweeper](b) }

// find returns the first of b and the backends it wraps (through
// PassThrough) that implements T.
func find[T any](b Backend) (T, bool) {
	for {
		if t, ok := b.(T); ok {
			return t, true
		}
		w, ok := b.(PassThrough)
		if !ok {
			var zero T
			return zero, false
		}
		b = w.PassThrough()
	}
}
