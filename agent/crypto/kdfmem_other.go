//go:build !linux

package crypto

// warmKDFMemory does nothing here: page faults were measured as costly on a
// Linux virtual machine only, and madvise's options are Linux's.
func warmKDFMemory(int) {}
