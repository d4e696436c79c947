package crypto

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// warmKDFMemory maps n bytes of heap with huge pages where the kernel allows
// them (transparent huge pages in "madvise" mode, the usual default), fills
// the page tables in one call (MADV_POPULATE_WRITE, Linux 5.14; touching
// each page on older kernels), and frees it, so that the next allocation of
// n bytes reuses resident memory. Every step is an optimisation: if one is
// refused, Argon2id still runs, only slower.
func warmKDFMemory(n int) {
	b := make([]byte, n)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	if unix.Madvise(b, unix.MADV_POPULATE_WRITE) != nil {
		for i := 0; i < len(b); i += os.Getpagesize() {
			b[i] = 0
		}
	}
	runtime.KeepAlive(b)
	runtime.GC()
}
