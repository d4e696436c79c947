package crypto

import (
	"encoding/json"
	"errors"
	"testing"
)

func FuzzOpen(f *testing.F) {
	k := &Key{}
	copy(k.Enc[:], "fuzz key for FuzzOpen, 32 bytes!")
	f.Add(k.Seal(nil, []byte("hello"), []byte("ad")), []byte("ad"))
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, Overhead), []byte(nil))
	f.Fuzz(func(t *testing.T, sealed, ad []byte) {
		out, err := k.Open(nil, sealed, ad)
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("error does not wrap ErrAuth: %v", err)
			}
			return
		}
		if len(out) != len(sealed)-Overhead {
			t.Fatalf("opened %d bytes from %d", len(out), len(sealed))
		}
	})
}

func FuzzUnwrap(f *testing.F) {
	pass := []byte("a long enough passphrase")
	p := KDFParams{Algorithm: AlgorithmArgon2id, Time: 1, MemoryKiB: minMemoryKiB, Threads: 1, Salt: make([]byte, 16)}
	var k Key
	w, err := Wrap(&k, pass, p)
	if err != nil {
		f.Fatal(err)
	}
	js, _ := json.Marshal(w)
	f.Add(js)
	f.Add([]byte(`{"kdf":{"algorithm":"argon2id","time":1,"memoryKiB":4294967295,"threads":255,"salt":"AAAAAAAAAAAAAAAAAAAAAA=="},"data":""}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var w *WrappedKey
		if err := json.Unmarshal(data, &w); err != nil {
			return
		}
		// Valid but costly parameters are scaled down so the fuzzer stays
		// fast; out-of-range values are left alone and must be refused.
		if w != nil && w.KDF.Validate() == nil {
			w.KDF.MemoryKiB, w.KDF.Time = minMemoryKiB, 1
			w.KDF.Threads = min(w.KDF.Threads, 4)
		}
		k, err := Unwrap(w, pass)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}
