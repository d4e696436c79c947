package crypto

import (
	"bytes"
	"runtime"
	"testing"

	"golang.org/x/crypto/argon2"
)

// TestDeriveKEKIsArgon2id: warming the memory changes nothing in the key.
func TestDeriveKEKIsArgon2id(t *testing.T) {
	p := KDFParams{Algorithm: AlgorithmArgon2id, Time: 1, MemoryKiB: 8 << 10, Threads: 3, Salt: bytes.Repeat([]byte{7}, 16)}
	got := deriveKEK([]byte("a long enough passphrase"), p)
	want := argon2.IDKey([]byte("a long enough passphrase"), p.Salt, p.Time, p.MemoryKiB, p.Threads, 32)
	if !bytes.Equal(got, want) {
		t.Fatal("deriveKEK differs from argon2.IDKey")
	}
}

// TestArgon2BytesMatchesArgon2: the warmed block must be the size argon2
// allocates, or the allocator cannot hand the same pages over and the
// process pays for both.
func TestArgon2BytesMatchesArgon2(t *testing.T) {
	for _, tc := range []struct {
		memKiB  uint32
		threads uint8
	}{{64 << 10, 4}, {8 << 10, 3}, {10000, 7}, {8, 4}} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		argon2.IDKey([]byte("p"), []byte("saltsaltsaltsalt"), 1, tc.memKiB, tc.threads, 32)
		runtime.ReadMemStats(&after)
		got := int(after.TotalAlloc - before.TotalAlloc)
		want := argon2Bytes(tc.memKiB, tc.threads)
		// argon2 allocates its blocks plus a few KiB of hashing state.
		if got < want || got > want+64<<10 {
			t.Errorf("m=%d KiB p=%d: argon2 allocated %d bytes, argon2Bytes says %d", tc.memKiB, tc.threads, got, want)
		}
	}
}
