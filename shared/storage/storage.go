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
	"context"
	"errors"
	"io"
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
	return io.ReadAll(rc)
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

// Unwrapper is a wrapper that adds nothing a spooled write needs (retries
// of whole-object calls): AsSpooler looks through it.
type Unwrapper interface {
	Unwrap() Backend
}

// AsSpooler returns b's Spooler, looking through wrappers that implement
// Unwrapper. A wrapper that does not (a throttle, say) hides the Spooler,
// so that what it adds is never bypassed.
func AsSpooler(b Backend) (Spooler, bool) {
	for {
		if s, ok := b.(Spooler); ok {
			return s, true
		}
		u, ok := b.(Unwrapper)
		if !ok {
			return nil, false
		}
		b = u.Unwrap()
	}
}
