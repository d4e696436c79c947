package crypto

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
)

const benchSize = 1 << 20

func benchInput(b *testing.B) []byte {
	b.Helper()
	data := make([]byte, benchSize)
	if _, err := rand.Read(data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	return data
}

// BenchmarkHash compares the candidate chunk-ID hashes on 1 MiB inputs;
// it justifies keyed BLAKE3 for ChunkID.
func BenchmarkHash(b *testing.B) {
	var key [32]byte
	b.Run("ChunkID-BLAKE3-keyed", func(b *testing.B) {
		k := &Key{}
		data := benchInput(b)
		for b.Loop() {
			k.ChunkID(data)
		}
	})
	b.Run("BLAKE3-keyed-raw", func(b *testing.B) {
		data := benchInput(b)
		var out [32]byte
		for b.Loop() {
			h, _ := blake3.NewKeyed(key[:])
			h.Write(data)
			h.Sum(out[:0])
		}
	})
	b.Run("HMAC-SHA256", func(b *testing.B) {
		data := benchInput(b)
		h := hmac.New(sha256.New, key[:])
		var out [32]byte
		for b.Loop() {
			h.Reset()
			h.Write(data)
			h.Sum(out[:0])
		}
	})
	b.Run("SHA256-plain", func(b *testing.B) {
		data := benchInput(b)
		for b.Loop() {
			sha256.Sum256(data)
		}
	})
}

// BenchmarkAEAD compares AES-256-GCM with ChaCha20-Poly1305 sealing and
// opening 1 MiB with a random nonce; it justifies AES-256-GCM for Seal.
func BenchmarkAEAD(b *testing.B) {
	b.Run("AES256GCM-Seal", func(b *testing.B) {
		k := &Key{}
		data := benchInput(b)
		out := make([]byte, 0, len(data)+Overhead)
		for b.Loop() {
			out = k.Seal(out[:0], data, nil)
		}
	})
	b.Run("AES256GCM-Open", func(b *testing.B) {
		k := &Key{}
		data := benchInput(b)
		sealed := k.Seal(nil, data, nil)
		out := make([]byte, 0, len(data))
		for b.Loop() {
			var err error
			if out, err = k.Open(out[:0], sealed, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ChaCha20Poly1305-Seal", func(b *testing.B) {
		a, _ := chacha20poly1305.New(make([]byte, 32))
		data := benchInput(b)
		out := make([]byte, 0, len(data)+a.NonceSize()+a.Overhead())
		for b.Loop() {
			out = out[:a.NonceSize()]
			rand.Read(out)
			out = a.Seal(out, out, data, nil)
		}
	})
	b.Run("ChaCha20Poly1305-Open", func(b *testing.B) {
		a, _ := chacha20poly1305.New(make([]byte, 32))
		data := benchInput(b)
		nonce := make([]byte, a.NonceSize())
		sealed := a.Seal(nil, nonce, data, nil)
		out := make([]byte, 0, len(data))
		for b.Loop() {
			var err error
			if out, err = a.Open(out[:0], nonce, sealed, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUnwrapDefault shows the cost of opening a repository with the
// default Argon2id parameters (t=3, 64 MiB, p=4).
func BenchmarkUnwrapDefault(b *testing.B) {
	p, err := DefaultKDFParams()
	if err != nil {
		b.Fatal(err)
	}
	pass := []byte("a long enough passphrase")
	w, err := Wrap(&Key{}, pass, p)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Unwrap(w, pass); err != nil {
			b.Fatal(err)
		}
	}
}
