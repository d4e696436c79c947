package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

// testKDF keeps Argon2id cheap so tests stay fast.
func testKDF(t testing.TB) KDFParams {
	t.Helper()
	p, err := DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	p.Time, p.MemoryKiB, p.Threads = 1, minMemoryKiB, 1
	return p
}

func mustKey(t testing.TB) *Key {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKey(t)
	for _, tc := range []struct {
		name  string
		plain []byte
		ad    []byte
		dst   []byte
	}{
		{"empty", nil, nil, nil},
		{"short", []byte("hello"), []byte("ad"), nil},
		{"1MiB", bytes.Repeat([]byte{0xA5}, 1<<20), []byte("chunk"), nil},
		{"appends to dst", []byte("payload"), nil, []byte("prefix")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed := k.Seal(bytes.Clone(tc.dst), tc.plain, tc.ad)
			if !bytes.HasPrefix(sealed, tc.dst) {
				t.Fatal("Seal did not append to dst")
			}
			sealed = sealed[len(tc.dst):]
			if len(sealed) != len(tc.plain)+Overhead {
				t.Fatalf("sealed length %d, want %d", len(sealed), len(tc.plain)+Overhead)
			}
			got, err := k.Open(bytes.Clone(tc.dst), sealed, tc.ad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append(bytes.Clone(tc.dst), tc.plain...)) {
				t.Fatal("round trip mismatch")
			}
		})
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	k := mustKey(t)
	a, b := k.Seal(nil, []byte("same"), nil), k.Seal(nil, []byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical")
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	k := mustKey(t)
	ad := []byte("object")
	sealed := k.Seal(nil, []byte("a short secret message"), ad)

	check := func(t *testing.T, what string, data, ad []byte, key *Key) {
		t.Helper()
		out, err := key.Open([]byte("dst"), data, ad)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("%s: err = %v, want ErrAuth", what, err)
		}
		if string(out) != "dst" {
			t.Fatalf("%s: dst changed to %q", what, out)
		}
	}
	t.Run("bit flips", func(t *testing.T) {
		for i := range len(sealed) * 8 {
			bad := bytes.Clone(sealed)
			bad[i/8] ^= 1 << (i % 8)
			check(t, "flip", bad, ad, k)
		}
	})
	t.Run("truncations", func(t *testing.T) {
		for n := range len(sealed) {
			check(t, "truncate", sealed[:n], ad, k)
			check(t, "drop prefix", sealed[n+1:], ad, k)
		}
	})
	t.Run("extension", func(t *testing.T) {
		check(t, "extend", append(bytes.Clone(sealed), 0), ad, k)
	})
	t.Run("wrong AD", func(t *testing.T) {
		check(t, "ad", sealed, []byte("objecT"), k)
		check(t, "nil ad", sealed, nil, k)
	})
	t.Run("wrong key", func(t *testing.T) {
		check(t, "key", sealed, ad, mustKey(t))
	})
}

func TestKeyCacheFollowsKeyChanges(t *testing.T) {
	k := mustKey(t)
	sealed := k.Seal(nil, []byte("x"), nil)
	id := k.ChunkID([]byte("x"))
	other := mustKey(t)
	b, _ := other.MarshalBinary()
	if err := k.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(nil, sealed, nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("stale cipher after UnmarshalBinary: err = %v", err)
	}
	if k.ChunkID([]byte("x")) == id || k.ChunkID([]byte("x")) != other.ChunkID([]byte("x")) {
		t.Fatal("stale MAC hasher after UnmarshalBinary")
	}
}

func TestConcurrentUse(t *testing.T) {
	k := mustKey(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				msg := []byte(strings.Repeat("m", g*100+i))
				if got, err := k.Open(nil, k.Seal(nil, msg, nil), nil); err != nil || !bytes.Equal(got, msg) {
					t.Errorf("concurrent round trip: %v", err)
					return
				}
				if k.ChunkID(msg) != k.ChunkID(msg) {
					t.Error("ChunkID not deterministic under concurrency")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestChunkID(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	data := bytes.Repeat([]byte("chunk"), 100000)
	if k1.ChunkID(data) != k1.ChunkID(data) {
		t.Fatal("ChunkID is not deterministic")
	}
	if k1.ChunkID(data) == k2.ChunkID(data) {
		t.Fatal("ChunkID is the same under two keys")
	}
	if k1.ChunkID(data) == k1.ChunkID(data[1:]) {
		t.Fatal("ChunkID is the same for different data")
	}
	if k1.ChunkID(nil) == k2.ChunkID(nil) {
		t.Fatal("ChunkID of empty input is the same under two keys")
	}
}

// TestChunkIDVector pins the hash to the official BLAKE3 keyed_hash test
// vector, so a library change cannot silently rename every chunk.
func TestChunkIDVector(t *testing.T) {
	var k Key
	copy(k.MAC[:], "whats the Elvish word for friend")
	input := make([]byte, 1024)
	for i := range input {
		input[i] = byte(i % 251)
	}
	const want = "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4"
	if got := k.ChunkID(input).String(); got != want {
		t.Fatalf("ChunkID = %s, want %s", got, want)
	}
}

func TestIDStringParse(t *testing.T) {
	k := mustKey(t)
	id := k.ChunkID([]byte("x"))
	s := id.String()
	if len(s) != 64 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 64 lower hex digits", s)
	}
	got, err := ParseID(s)
	if err != nil || got != id {
		t.Fatalf("ParseID(String()) = %v, %v", got, err)
	}
	if got, err := ParseID(strings.ToUpper(s)); err != nil || got != id {
		t.Fatalf("ParseID(upper) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "00", s[:63], s + "0", strings.Repeat("zz", 32)} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) succeeded", bad)
		}
	}
}

func TestKeyBinary(t *testing.T) {
	k := mustKey(t)
	b, err := k.MarshalBinary()
	if err != nil || len(b) != KeySize {
		t.Fatalf("MarshalBinary = %d bytes, %v", len(b), err)
	}
	var k2 Key
	if err := k2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if k2.Enc != k.Enc || k2.MAC != k.MAC || k2.Chunker != k.Chunker {
		t.Fatal("binary round trip mismatch")
	}
	for _, n := range []int{0, 95, 97} {
		if err := k2.UnmarshalBinary(make([]byte, n)); err == nil {
			t.Errorf("UnmarshalBinary(%d bytes) succeeded", n)
		}
	}
	if k.Enc == k.MAC || k.MAC == k.Chunker {
		t.Fatal("NewKey sub-keys are equal")
	}
}

func TestCheckPassphrase(t *testing.T) {
	for _, tc := range []struct {
		p      string
		wantOK bool
	}{
		{"", false},
		{"fifteen chars!!", false},
		{"sixteen chars!!!", true},
		{"ééééééééééééééé", false}, // 15 runes, 30 bytes: runes count
		{"éééééééééééééééé", true},
	} {
		err := CheckPassphrase([]byte(tc.p))
		if (err == nil) != tc.wantOK {
			t.Errorf("CheckPassphrase(%q) = %v, want ok=%v", tc.p, err, tc.wantOK)
		}
	}
	err := CheckPassphrase([]byte("ééé"))
	if err == nil || err.Error() != "passphrase must be at least 16 characters (got 3)" {
		t.Errorf("message = %v", err)
	}
}

func TestWrapUnwrap(t *testing.T) {
	k := mustKey(t)
	pass := []byte("correct horse battery staple")
	w, err := Wrap(k, pass, testKDF(t))
	if err != nil {
		t.Fatal(err)
	}
	// Through JSON, as stored in the repository.
	js, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var w2 WrappedKey
	if err := json.Unmarshal(js, &w2); err != nil {
		t.Fatal(err)
	}
	got, err := Unwrap(&w2, pass)
	if err != nil {
		t.Fatal(err)
	}
	if got.Enc != k.Enc || got.MAC != k.MAC || got.Chunker != k.Chunker {
		t.Fatal("unwrapped key differs")
	}

	if _, err := Unwrap(&w2, []byte("correct horse battery stapler")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: err = %v", err)
	}
	tampered := w2
	tampered.Data = bytes.Clone(w2.Data)
	tampered.Data[20] ^= 1
	if _, err := Unwrap(&tampered, pass); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("tampered data: err = %v", err)
	}
	resalted := w2
	resalted.KDF.Salt = bytes.Clone(w2.KDF.Salt)
	resalted.KDF.Salt[0] ^= 1
	if _, err := Unwrap(&resalted, pass); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("changed salt: err = %v", err)
	}
}

func TestWrapRefuses(t *testing.T) {
	k := mustKey(t)
	if _, err := Wrap(k, []byte("short"), testKDF(t)); err == nil {
		t.Error("Wrap accepted a short passphrase")
	}
	p := testKDF(t)
	p.MemoryKiB = 1
	if _, err := Wrap(k, []byte("a long enough passphrase"), p); err == nil {
		t.Error("Wrap accepted invalid KDF params")
	}
	if _, err := Wrap(nil, []byte("a long enough passphrase"), testKDF(t)); err == nil {
		t.Error("Wrap accepted a nil key")
	}
}

func TestUnwrapRejectsHostileParams(t *testing.T) {
	good, err := Wrap(mustKey(t), []byte("a long enough passphrase"), testKDF(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(w *WrappedKey)
	}{
		{"unknown algorithm", func(w *WrappedKey) { w.KDF.Algorithm = "scrypt" }},
		{"empty algorithm", func(w *WrappedKey) { w.KDF.Algorithm = "" }},
		{"memory 1 TiB", func(w *WrappedKey) { w.KDF.MemoryKiB = 1<<32 - 1 }},
		{"memory just over 4 GiB", func(w *WrappedKey) { w.KDF.MemoryKiB = maxMemoryKiB + 1 }},
		{"memory too small", func(w *WrappedKey) { w.KDF.MemoryKiB = minMemoryKiB - 1 }},
		{"time zero", func(w *WrappedKey) { w.KDF.Time = 0 }},
		{"time huge", func(w *WrappedKey) { w.KDF.Time = 1 << 31 }},
		{"threads zero", func(w *WrappedKey) { w.KDF.Threads = 0 }},
		{"threads 65", func(w *WrappedKey) { w.KDF.Threads = 65 }},
		{"short salt", func(w *WrappedKey) { w.KDF.Salt = w.KDF.Salt[:15] }},
		{"no salt", func(w *WrappedKey) { w.KDF.Salt = nil }},
		{"huge salt", func(w *WrappedKey) { w.KDF.Salt = make([]byte, 1<<20) }},
		{"short data", func(w *WrappedKey) { w.Data = w.Data[:len(w.Data)-1] }},
		{"no data", func(w *WrappedKey) { w.Data = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := *good
			tc.mutate(&w)
			_, err := Unwrap(&w, []byte("a long enough passphrase"))
			if err == nil || errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("err = %v, want a refusal before the KDF", err)
			}
		})
	}
	if _, err := Unwrap(nil, nil); err == nil {
		t.Error("Unwrap(nil) succeeded")
	}
}

func TestDefaultKDFParams(t *testing.T) {
	p, err := DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Algorithm != "argon2id" || p.Time != 3 || p.MemoryKiB != 64<<10 || p.Threads != 4 || len(p.Salt) != 16 {
		t.Fatalf("DefaultKDFParams = %+v", p)
	}
	q, _ := DefaultKDFParams()
	if bytes.Equal(p.Salt, q.Salt) {
		t.Fatal("salts repeat")
	}
}

// Open into sealed[:0] decrypts in sealed's own storage, as a restore
// opens the blobs of a span it has read, and still refuses damage.
func TestOpenInPlace(t *testing.T) {
	k := mustKey(t)
	plain := bytes.Repeat([]byte("in place "), 1000)
	sealed := k.Seal(nil, plain, []byte("ad"))
	got, err := k.Open(sealed[:0], sealed, []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) || &got[0] != &sealed[0] {
		t.Fatal("not decrypted in place")
	}
	sealed = k.Seal(nil, plain, []byte("ad"))
	sealed[len(sealed)/2] ^= 1
	if _, err := k.Open(sealed[:0], sealed, []byte("ad")); !errors.Is(err, ErrAuth) {
		t.Fatalf("tampered, in place: err = %v, want ErrAuth", err)
	}
}
