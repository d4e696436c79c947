package crypto

import (
	"runtime"
	"sync"

	"golang.org/x/crypto/argon2"
)

// kdfMu runs one key derivation at a time in the process: each holds its
// whole memory cost (64 MiB by default), and two at once would double the
// peak for no gain on a machine with few cores.
var kdfMu sync.Mutex

// deriveKEK runs Argon2id with p on memory made ready beforehand, then
// collects it at once.
//
// Why: on a virtual machine every first touch of a page traps to the
// hypervisor. Argon2id's 64 MiB is 16,384 such faults, which cost 0.2 s
// of system time in a fresh process on the machine the benchmarks ran on,
// three times Argon2id's own work, in every command that opens a
// repository. warmKDFMemory asks the kernel for that memory in one call
// (with huge pages where it can), and the allocator hands the same pages to
// argon2 when it asks for a block of the same size. The forced collection
// afterwards matters as much: a collection that ran while the 64 MiB was
// live would otherwise let the heap grow to twice that before the next,
// which showed as the backup's peak memory.
func deriveKEK(passphrase []byte, p KDFParams) []byte {
	kdfMu.Lock()
	defer kdfMu.Unlock()
	warmKDFMemory(argon2Bytes(p.MemoryKiB, p.Threads))
	kek := argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryKiB, p.Threads, 32)
	runtime.GC()
	return kek
}

// argon2Bytes is the size of the block array argon2.IDKey allocates for
// these parameters (its memory rounded down to a multiple of 4 lanes'
// segments, with a floor), so that warmed memory fits it exactly.
func argon2Bytes(memoryKiB uint32, threads uint8) int {
	const syncPoints = 4
	m := memoryKiB / (syncPoints * uint32(threads)) * (syncPoints * uint32(threads))
	if m < 2*syncPoints*uint32(threads) {
		m = 2 * syncPoints * uint32(threads)
	}
	return int(m) << 10
}
