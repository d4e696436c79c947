// Package fsmeta reads and restores the file system metadata the backup
// engine stores beside file contents: kind, permissions, ownership, times,
// identity (for change detection and hard links), extended attributes,
// sparse-file layout and, on Windows, file attributes and security
// descriptors.
//
// Everything here works on the path itself and never follows a final
// symbolic link, so that a backup records links as links and a restore
// cannot be tricked into changing a link's target.
package fsmeta

import (
	"io/fs"
	"os/user"
	"strconv"
	"sync"
	"time"
)

// Kind is the type of a file system entry.
type Kind uint8

// Kinds of entries. The zero value is File so that a Meta built by hand for
// regular content needs no extra field.
const (
	File Kind = iota
	Dir
	Symlink
	FIFO
	Socket
	Device // character or block device; Meta.Mode and Rdev tell which is which on unix
	Other
)

var kindNames = [...]string{"file", "dir", "symlink", "fifo", "socket", "device", "other"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Meta is the metadata of one entry as the backup engine stores it.
type Meta struct {
	Kind        Kind
	Mode        uint32 // permission bits incl. setuid/setgid/sticky (unix), 0 on Windows
	UID, GID    uint32
	User, Group string // names when resolvable; best effort, so restore can map by name elsewhere
	Size        int64
	ModTime     time.Time // ns precision where the file system has it
	ChangeTime  time.Time // ctime (unix) / change time; only for change detection
	BirthTime   time.Time // darwin and Windows; zero elsewhere
	Inode, Dev  uint64    // identity, for change detection and hard links
	Nlink       uint64
	Rdev        uint64 // devices only
	WinAttrs    uint32 // Windows FILE_ATTRIBUTE_* bits, 0 elsewhere
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// ApplyOptions selects the optional parts of Apply.
type ApplyOptions struct {
	// Owner restores UID and GID. Only root may give files away, so restore
	// sets it only when running as root.
	Owner bool
}

// Extent is a region of a file that holds data; everything between extents
// is a hole that reads as zeros.
type Extent struct{ Offset, Length int64 }

// Unix permission bits that fs.FileMode keeps in separate flags.
const (
	modeSetuid = 0o4000
	modeSetgid = 0o2000
	modeSticky = 0o1000
	modePerm   = 0o7777
)

// kindOf maps the portable type bits, used where no unix stat is at hand.
func kindOf(m fs.FileMode) Kind {
	switch t := m.Type(); {
	case t == 0:
		return File
	case t&fs.ModeDir != 0:
		return Dir
	case t&fs.ModeSymlink != 0:
		return Symlink
	case t&fs.ModeNamedPipe != 0:
		return FIFO
	case t&fs.ModeSocket != 0:
		return Socket
	case t&fs.ModeDevice != 0:
		return Device
	default:
		return Other
	}
}

// unixMode turns fs.FileMode's permission flags back into the unix bits.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= modeSetuid
	}
	if m&fs.ModeSetgid != 0 {
		u |= modeSetgid
	}
	if m&fs.ModeSticky != 0 {
		u |= modeSticky
	}
	return u
}

// genericMeta is what any fs.FileInfo offers, for FileInfos whose Sys() is
// not the platform's stat structure (fakes, fs.FS implementations).
func genericMeta(fi fs.FileInfo) Meta {
	return Meta{
		Kind:    kindOf(fi.Mode()),
		Mode:    unixMode(fi.Mode()),
		Size:    fi.Size(),
		ModTime: fi.ModTime(),
	}
}

// idNames caches uid/gid → name lookups: a backup stats every file, and
// NSS lookups (possibly LDAP) are far slower than a stat. Failed lookups
// are cached too, as "".
type idNames struct {
	mu     sync.Mutex
	m      map[uint32]string
	lookup func(string) (string, error)
}

func (c *idNames) name(id uint32) string {
	c.mu.Lock()
	n, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return n
	}
	// Looked up outside the lock so one slow lookup does not stall every
	// other goroutine; a duplicate lookup is harmless.
	n, err := c.lookup(strconv.FormatUint(uint64(id), 10))
	if err != nil {
		n = ""
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[uint32]string)
	}
	c.m[id] = n
	c.mu.Unlock()
	return n
}

var (
	userNames = &idNames{lookup: func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	}}
	groupNames = &idNames{lookup: func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	}}
)
