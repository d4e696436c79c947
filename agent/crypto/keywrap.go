package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MinPassphraseLen is the minimum passphrase length in characters (runes).
const MinPassphraseLen = 16

// Bounds on KDF parameters read from a key file. The file is readable (and
// writable) by whoever controls the storage account, so the parameters are
// hostile input: without these bounds a forged file could make Unwrap
// allocate terabytes or spin for hours.
const (
	minMemoryKiB = 8 << 10 // 8 MiB
	maxMemoryKiB = 4 << 20 // 4 GiB
	minTime      = 1
	maxTime      = 100
	minThreads   = 1
	maxThreads   = 64
	minSaltLen   = 16
	maxSaltLen   = 1024
)

// AlgorithmArgon2id names Argon2id (RFC 9106) in KDFParams.Algorithm.
const AlgorithmArgon2id = "argon2id"

// wrapLabel is the additional data of the key-wrapping AEAD; it binds the
// ciphertext to its purpose and format version.
var wrapLabel = []byte("coffer key v1")

// wrappedDataLen is the exact length of WrappedKey.Data.
const wrappedDataLen = NonceSize + KeySize + TagSize

// ErrWrongPassphrase reports that a wrapped key could not be authenticated
// with the passphrase given: the passphrase is wrong (or the key file was
// modified, which is indistinguishable).
var ErrWrongPassphrase = errors.New("crypto: wrong passphrase")

// KDFParams are the parameters of the passphrase KDF, stored in clear beside
// the wrapped key.
type KDFParams struct {
	Algorithm string `json:"algorithm"` // "argon2id"
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memoryKiB"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"` // 16 random bytes
}

// WrappedKey is a Key encrypted under a key derived from a passphrase, as
// stored (JSON) in the repository's keys/ folder.
type WrappedKey struct {
	KDF  KDFParams `json:"kdf"`
	Data []byte    `json:"data"` // AES-256-GCM(KEK, 96 bytes of key material), nonce prepended; AD "coffer key v1"
}

// DefaultKDFParams returns Argon2id with t=3, m=64 MiB, p=4 (the second
// recommended option of RFC 9106 / OWASP) and a fresh 16-byte random salt.
func DefaultKDFParams() (KDFParams, error) {
	salt := make([]byte, minSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return KDFParams{}, fmt.Errorf("crypto: generate salt: %w", err)
	}
	return KDFParams{
		Algorithm: AlgorithmArgon2id,
		Time:      3,
		MemoryKiB: 64 << 10,
		Threads:   4,
		Salt:      salt,
	}, nil
}

// Validate reports whether p is within the bounds Coffer accepts.
func (p KDFParams) Validate() error {
	switch {
	case p.Algorithm != AlgorithmArgon2id:
		return fmt.Errorf("crypto: unsupported KDF algorithm %q (want %q)", p.Algorithm, AlgorithmArgon2id)
	case p.MemoryKiB < minMemoryKiB || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("crypto: KDF memory %d KiB out of range [%d, %d] KiB", p.MemoryKiB, minMemoryKiB, maxMemoryKiB)
	case p.Time < minTime || p.Time > maxTime:
		return fmt.Errorf("crypto: KDF time %d out of range [%d, %d]", p.Time, minTime, maxTime)
	case p.Threads < minThreads || p.Threads > maxThreads:
		return fmt.Errorf("crypto: KDF threads %d out of range [%d, %d]", p.Threads, minThreads, maxThreads)
	case len(p.Salt) < minSaltLen || len(p.Salt) > maxSaltLen:
		return fmt.Errorf("crypto: KDF salt is %d bytes, want %d to %d", len(p.Salt), minSaltLen, maxSaltLen)
	}
	return nil
}

// CheckPassphrase reports whether p is long enough to protect a repository.
func CheckPassphrase(p []byte) error {
	if n := utf8.RuneCount(p); n < MinPassphraseLen {
		return fmt.Errorf("passphrase must be at least %d characters (got %d)", MinPassphraseLen, n)
	}
	return nil
}

// kekAEAD derives the key-encryption key from passphrase and returns its AEAD.
func kekAEAD(passphrase []byte, p KDFParams) (cipher.AEAD, error) {
	kek := deriveKEK(passphrase, p)
	defer clear(kek)
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("crypto: key-encryption cipher: %w", err)
	}
	a, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("crypto: key-encryption cipher: %w", err)
	}
	return a, nil
}

// Wrap encrypts k under a key derived from passphrase with p. It refuses
// passphrases that fail CheckPassphrase and parameters that fail Validate,
// so nothing is written that Unwrap would later reject.
func Wrap(k *Key, passphrase []byte, p KDFParams) (*WrappedKey, error) {
	if k == nil {
		return nil, errors.New("crypto: wrap: nil key")
	}
	if err := CheckPassphrase(passphrase); err != nil {
		return nil, fmt.Errorf("crypto: wrap: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("crypto: wrap: %w", err)
	}
	a, err := kekAEAD(passphrase, p)
	if err != nil {
		return nil, err
	}
	plain, _ := k.MarshalBinary()
	defer clear(plain)
	p.Salt = append([]byte(nil), p.Salt...) // don't alias the caller's slice
	return &WrappedKey{KDF: p, Data: a.Seal(make([]byte, 0, wrappedDataLen), nil, plain, wrapLabel)}, nil
}

// Unwrap decrypts a wrapped key with passphrase. The KDF parameters and data
// length are validated before any expensive work, since the file is
// untrusted. A failed authentication returns an error wrapping
// ErrWrongPassphrase.
func Unwrap(w *WrappedKey, passphrase []byte) (*Key, error) {
	if w == nil {
		return nil, errors.New("crypto: unwrap: nil wrapped key")
	}
	if err := w.KDF.Validate(); err != nil {
		return nil, fmt.Errorf("crypto: unwrap: refusing key file: %w", err)
	}
	if len(w.Data) != wrappedDataLen {
		return nil, fmt.Errorf("crypto: unwrap: refusing key file: data is %d bytes, want %d", len(w.Data), wrappedDataLen)
	}
	a, err := kekAEAD(passphrase, w.KDF)
	if err != nil {
		return nil, err
	}
	plain, err := a.Open(make([]byte, 0, KeySize), nil, w.Data, wrapLabel)
	if err != nil {
		return nil, fmt.Errorf("crypto: unwrap: %w", ErrWrongPassphrase)
	}
	defer clear(plain)
	k := new(Key)
	if err := k.UnmarshalBinary(plain); err != nil {
		return nil, fmt.Errorf("crypto: unwrap: %w", err)
	}
	return k, nil
}
