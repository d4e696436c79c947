package fsmeta

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Lstat returns the metadata of path itself; a symlink or junction is
// described, not followed. Beyond what os.Lstat gives, it opens the entry
// (without following reparse points) for its file ID, volume, link count
// and change time; if that fails (e.g. a file in use by the system) the
// os.Lstat part is still returned.
func Lstat(path string) (Meta, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Meta{}, fmt.Errorf("fsmeta: %w", err)
	}
	m := FromFileInfo(fi)
	h, err := openNoFollow(path, windows.FILE_READ_ATTRIBUTES)
	if err != nil {
		return m, nil
	}
	defer windows.CloseHandle(h)
	var bhi windows.ByHandleFileInformation
	if windows.GetFileInformationByHandle(h, &bhi) == nil {
		m.Dev = uint64(bhi.VolumeSerialNumber)
		m.Inode = uint64(bhi.FileIndexHigh)<<32 | uint64(bhi.FileIndexLow)
		m.Nlink = uint64(bhi.NumberOfLinks)
	}
	var bi fileBasicInfo
	if windows.GetFileInformationByHandleEx(h, windows.FileBasicInfo, (*byte)(unsafe.Pointer(&bi)), uint32(unsafe.Sizeof(bi))) == nil {
		m.ChangeTime = fromFiletime(bi.ChangeTime)
	}
	return m, nil
}

// FromFileInfo converts an os.Lstat or DirEntry.Info result without another
// system call. Windows keeps the file ID, volume, link count and change
// time out of FileInfo, so those stay zero here; Lstat fills them.
func FromFileInfo(fi fs.FileInfo) Meta {
	d, ok := fi.Sys().(*syscall.Win32FileAttributeData)
	if !ok || d == nil {
		m := genericMeta(fi)
		m.Mode = 0
		return m
	}
	m := Meta{
		Kind:      kindOf(fi.Mode()),
		Size:      fi.Size(),
		ModTime:   time.Unix(0, d.LastWriteTime.Nanoseconds()),
		BirthTime: time.Unix(0, d.CreationTime.Nanoseconds()),
		WinAttrs:  d.FileAttributes,
	}
	if m.Kind == Dir {
		m.Size = 0
	}
	return m
}

// IsRoot reports whether the process runs elevated, the Windows analogue
// of root for restoring owners and protected attributes.
func IsRoot() bool {
	return windows.GetCurrentProcessToken().IsElevated()
}

// fileBasicInfo is FILE_BASIC_INFO, which x/sys/windows does not define.
// Times are 100 ns intervals since 1601; 0 in a Set call means "leave as
// is", and so does an attribute value of 0.
type fileBasicInfo struct {
	CreationTime   int64
	LastAccessTime int64
	LastWriteTime  int64
	ChangeTime     int64
	FileAttributes uint32
	_              uint32
}

func toFiletime(t time.Time) int64 {
	ft := windows.NsecToFiletime(t.UnixNano())
	return int64(ft.HighDateTime)<<32 | int64(ft.LowDateTime)
}

func fromFiletime(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	ft := windows.Filetime{LowDateTime: uint32(v), HighDateTime: uint32(v >> 32)}
	return time.Unix(0, ft.Nanoseconds())
}

// openNoFollow opens the entry itself: OPEN_REPARSE_POINT keeps links from
// being followed and BACKUP_SEMANTICS is required to open directories.
func openNoFollow(path string, access uint32) (windows.Handle, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return windows.InvalidHandle, err
	}
	return windows.CreateFile(p, access,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING,
		windows.FILE_FLAG_OPEN_REPARSE_POINT|windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
}

// settableAttrs are the FILE_ATTRIBUTE_* bits SetFileInformationByHandle
// accepts; the others (directory, reparse point, sparse, compressed,
// encrypted…) describe state that is created by other means.
const settableAttrs = windows.FILE_ATTRIBUTE_READONLY | windows.FILE_ATTRIBUTE_HIDDEN |
	windows.FILE_ATTRIBUTE_SYSTEM | windows.FILE_ATTRIBUTE_ARCHIVE |
	windows.FILE_ATTRIBUTE_TEMPORARY | windows.FILE_ATTRIBUTE_OFFLINE |
	windows.FILE_ATTRIBUTE_NOT_CONTENT_INDEXED

// Apply restores times (write, access and, when known, creation) and
// Windows attributes in one SetFileInformationByHandle on the entry itself,
// so links are never followed. Mode and UID/GID have no meaning here:
// ownership and permissions travel in the security descriptor, so
// o.Owner is ignored (see WriteSecurityDescriptor).
func Apply(path string, m Meta, o ApplyOptions) error {
	var bi fileBasicInfo
	if !m.ModTime.IsZero() {
		bi.LastWriteTime = toFiletime(m.ModTime)
		bi.LastAccessTime = bi.LastWriteTime
	}
	if !m.BirthTime.IsZero() {
		bi.CreationTime = toFiletime(m.BirthTime)
	}
	if m.WinAttrs != 0 {
		bi.FileAttributes = m.WinAttrs & settableAttrs
		if bi.FileAttributes == 0 {
			// 0 would mean "unchanged"; NORMAL clears every settable bit.
			bi.FileAttributes = windows.FILE_ATTRIBUTE_NORMAL
		}
	}
	if bi == (fileBasicInfo{}) {
		return nil
	}
	h, err := openNoFollow(path, windows.FILE_WRITE_ATTRIBUTES)
	if err != nil {
		return fmt.Errorf("fsmeta: open %s: %w", path, err)
	}
	defer windows.CloseHandle(h)
	if err := windows.SetFileInformationByHandle(h, windows.FileBasicInfo, (*byte)(unsafe.Pointer(&bi)), uint32(unsafe.Sizeof(bi))); err != nil {
		return fmt.Errorf("fsmeta: set basic info %s: %w", path, err)
	}
	return nil
}

// ReadXattrs returns nil, nil: Windows has no xattrs in the unix sense
// (alternate data streams and EAs are not handled).
func ReadXattrs(path string) ([]Xattr, error) { return nil, nil }

// WriteXattrs reports xattrs from a unix backup as unsupported, which the
// caller shows as a warning.
func WriteXattrs(path string, xs []Xattr) error {
	if len(xs) == 0 {
		return nil
	}
	return fmt.Errorf("fsmeta: %d xattrs on %s: %w", len(xs), path, errors.ErrUnsupported)
}

// allocatedRange is FILE_ALLOCATED_RANGE_BUFFER.
type allocatedRange struct{ Offset, Length int64 }

// DataExtents returns the allocated regions of f within [0, size) with
// FSCTL_QUERY_ALLOCATED_RANGES, so the archiver can skip the holes of a
// sparse file. A file that is not sparse is one allocated range. Where the
// file system cannot tell (FAT, or a driver without the control code), it
// returns one extent covering the whole file, which is always correct, only
// not sparse. A file with no data at all gives no extents.
func DataExtents(f *os.File, size int64) ([]Extent, error) {
	if size <= 0 {
		return nil, nil
	}
	whole := []Extent{{Offset: 0, Length: size}}
	var exts []Extent
	in := allocatedRange{Offset: 0, Length: size}
	out := make([]allocatedRange, 64)
	unit := uint32(unsafe.Sizeof(out[0]))
	for in.Length > 0 {
		var n uint32
		err := windows.DeviceIoControl(windows.Handle(f.Fd()), windows.FSCTL_QUERY_ALLOCATED_RANGES,
			(*byte)(unsafe.Pointer(&in)), uint32(unsafe.Sizeof(in)),
			(*byte)(unsafe.Pointer(&out[0])), uint32(len(out))*unit, &n, nil)
		if err != nil && !errors.Is(err, windows.ERROR_MORE_DATA) {
			return whole, nil
		}
		got := out[:n/unit]
		for _, r := range got {
			end := min(r.Offset+r.Length, size)
			if r.Offset < in.Offset || end <= r.Offset {
				// An answer outside what was asked would make the loop
				// skip data or never end: trust none of it.
				return whole, nil
			}
			exts = append(exts, Extent{Offset: r.Offset, Length: end - r.Offset})
		}
		if err == nil {
			break
		}
		if len(got) == 0 {
			return whole, nil // more data, yet none returned: no progress
		}
		last := got[len(got)-1]
		in = allocatedRange{Offset: last.Offset + last.Length, Length: size - (last.Offset + last.Length)}
	}
	return exts, nil
}

// MakeSparse marks f sparse (FSCTL_SET_SPARSE) before setting its size, so
// the extended range is a hole instead of allocated zeros. File systems
// without sparse support (FAT) just get a normal file.
func MakeSparse(f *os.File, size int64) error {
	var n uint32
	// Best effort: a failure only costs disk space, never correctness.
	_ = windows.DeviceIoControl(windows.Handle(f.Fd()), windows.FSCTL_SET_SPARSE, nil, 0, nil, 0, &n, nil)
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("fsmeta: %w", err)
	}
	return nil
}

const sdInfo = windows.OWNER_SECURITY_INFORMATION | windows.GROUP_SECURITY_INFORMATION |
	windows.DACL_SECURITY_INFORMATION

// ReadSecurityDescriptor returns path's owner, group and DACL as a
// self-relative security descriptor. Reading the owner and group needs no
// privilege; a nil result means the object has none.
func ReadSecurityDescriptor(path string) ([]byte, error) {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, sdInfo)
	if err != nil {
		return nil, fmt.Errorf("fsmeta: get security info %s: %w", path, err)
	}
	if sd == nil {
		return nil, nil
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(sd)), sd.Length())
	return append([]byte(nil), b...), nil
}

// WriteSecurityDescriptor applies owner, group and DACL from a
// self-relative descriptor made by ReadSecurityDescriptor. Giving a file
// to another owner needs SeRestorePrivilege; when that is refused the DACL
// is still applied and the owner error returned, for a warning.
func WriteSecurityDescriptor(path string, sd []byte) error {
	if len(sd) == 0 {
		return nil
	}
	const minLen = int(unsafe.Sizeof(windows.SECURITY_DESCRIPTOR{}))
	if len(sd) < minLen {
		return fmt.Errorf("fsmeta: security descriptor for %s: %d bytes is too short", path, len(sd))
	}
	// SECURITY_DESCRIPTOR holds pointers in its absolute form, so the copy
	// is pointer-aligned, as x/sys/windows does for its own copies.
	const psize = int(unsafe.Sizeof(uintptr(0)))
	buf := make([]uintptr, (len(sd)+psize-1)/psize)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(sd)), sd)
	d := (*windows.SECURITY_DESCRIPTOR)(unsafe.Pointer(&buf[0]))
	if !d.IsValid() || int(d.Length()) > len(sd) {
		return fmt.Errorf("fsmeta: security descriptor for %s is not valid", path)
	}

	var info windows.SECURITY_INFORMATION
	owner, _, err := d.Owner()
	if err == nil && owner != nil {
		info |= windows.OWNER_SECURITY_INFORMATION
	}
	group, _, err := d.Group()
	if err == nil && group != nil {
		info |= windows.GROUP_SECURITY_INFORMATION
	}
	var dacl *windows.ACL
	if acl, _, err := d.DACL(); err == nil {
		dacl = acl
		info |= windows.DACL_SECURITY_INFORMATION
		// Keep inheritance as it was: a protected DACL must not pick up
		// the restore target's parent ACEs, an unprotected one must.
		if ctl, _, err := d.Control(); err == nil && ctl&windows.SE_DACL_PROTECTED != 0 {
			info |= windows.PROTECTED_DACL_SECURITY_INFORMATION
		} else {
			info |= windows.UNPROTECTED_DACL_SECURITY_INFORMATION
		}
	}
	if info == 0 {
		return nil
	}
	// On a handle to the entry itself: SetNamedSecurityInfo would follow a
	// symlink and set the ACL on its target.
	set := func(info windows.SECURITY_INFORMATION, owner, group *windows.SID) error {
		// READ_CONTROL too: SetSecurityInfo reads the current descriptor
		// to merge inherited entries, and fails "Access denied" without it
		// (seen under wine 8).
		access := uint32(windows.WRITE_DAC | windows.READ_CONTROL)
		if info&(windows.OWNER_SECURITY_INFORMATION|windows.GROUP_SECURITY_INFORMATION) != 0 {
			access |= windows.WRITE_OWNER
		}
		h, err := openNoFollow(path, access)
		if err != nil {
			return err
		}
		defer windows.CloseHandle(h)
		return windows.SetSecurityInfo(h, windows.SE_FILE_OBJECT, info, owner, group, dacl, nil)
	}
	fullErr := set(info, owner, group)
	if fullErr == nil {
		return nil
	}
	daclOnly := info &^ (windows.OWNER_SECURITY_INFORMATION | windows.GROUP_SECURITY_INFORMATION)
	if daclOnly == info || daclOnly&windows.DACL_SECURITY_INFORMATION == 0 {
		return fmt.Errorf("fsmeta: set security info %s: %w", path, fullErr)
	}
	if err := set(daclOnly, nil, nil); err != nil {
		return fmt.Errorf("fsmeta: set DACL %s: %w", path, err)
	}
	return fmt.Errorf("fsmeta: owner and group of %s not restored: %w", path, fullErr)
}
