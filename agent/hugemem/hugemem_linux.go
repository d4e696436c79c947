package hugemem

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// advise asks for huge pages over the whole pages of [p, p+size); the
// allocator hands out large objects page-aligned, and a refusal only
// leaves the memory as it was.
func advise(p unsafe.Pointer, size uintptr) {
	page := uintptr(unix.Getpagesize())
	skip := (page - uintptr(p)%page) % page
	if size <= skip {
		return
	}
	n := (size - skip) &^ (page - 1)
	if n == 0 {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, skip)), n), unix.MADV_HUGEPAGE)
}
