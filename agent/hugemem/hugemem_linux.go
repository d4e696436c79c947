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
	start := (uintptr(p) + page - 1) &^ (page - 1)
	end := (uintptr(p) + size) &^ (page - 1)
	if end <= start {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Pointer(start)), end-start), unix.MADV_HUGEPAGE)
}
