package restorer

import "os"

// noFollow is 0: Windows has no O_NOFOLLOW, but O_CREATE|O_EXCL (CREATE_NEW)
// fails on any existing entry, a link included.
const noFollow = 0

// preCreate is false: without O_NOFOLLOW a reopened path could lead
// through a planted reparse point, so each file is created, exclusively,
// by the first chunk written to it.
const preCreate = false

// fileID is never asked for on Windows, where preCreate is false.
func fileID(os.FileInfo) [2]uint64 { return [2]uint64{} }

func openFile(path string, flags int, perm uint32) (*os.File, error) {
	return os.OpenFile(path, flags, os.FileMode(perm))
}
