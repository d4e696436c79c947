package packrefs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/packrefs/packrefstest"
)

func TestDecodeStreamAcceptsWhatEncodeWrites(t *testing.T) {
	for _, packs := range [][]string{nil, {a}, {b, a, b}} {
		enc, err := New(p, packs).Encode()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		h, err := DecodeStream(bytes.NewReader(enc), "", func(id ID) error {
			got = append(got, id.String())
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		want := New(p, packs).Packs
		if h.Point != p || h.Version != 1 || h.Packs != len(want) || !slices.Equal(got, want) {
			t.Fatalf("%s: header %+v packs %v", enc, h, got)
		}
	}
}

func TestDecodeStreamRules(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"white space", " {\n\"version\" : 1 , \"point\":\"" + p + "\",\"packs\" : [ \"" + a + "\" ,\"" + b + "\" ] }\n", true},
		{"other key order", `{"packs":[],"version":1,"point":"` + p + `"}`, false},
		{"empty packs", `{"version":1,"point":"` + p + `","packs":[]}`, true},
		{"no packs key", `{"version":1,"point":"` + p + `"}`, true},
		{"null packs", `{"version":1,"point":"` + p + `","packs":null}`, true},
		{"empty", ``, false},
		{"not an object", `[]`, false},
		{"empty object", `{}`, false},
		{"no point", `{"version":1,"packs":[]}`, false},
		{"no version", `{"point":"` + p + `","packs":[]}`, false},
		{"version 2", `{"version":2,"point":"` + p + `","packs":[]}`, false},
		{"version 1.0", `{"version":1.0,"point":"` + p + `","packs":[]}`, false},
		{"version as string", `{"version":"1","point":"` + p + `","packs":[]}`, false},
		{"unknown key", `{"version":1,"point":"` + p + `","packs":[],"x":1}`, false},
		{"key twice", `{"version":1,"point":"` + p + `","point":"` + p + `"}`, false},
		{"escaped ID", `{"version":1,"point":"\u0030` + p[1:] + `"}`, false},
		{"short ID", `{"version":1,"point":"` + p[1:] + `"}`, false},
		{"long ID", `{"version":1,"point":"` + p + `0"}`, false},
		{"upper case", `{"version":1,"point":"` + strings.ToUpper(a) + `"}`, false},
		{"unsorted", `{"version":1,"point":"` + p + `","packs":["` + b + `","` + a + `"]}`, false},
		{"duplicate", `{"version":1,"point":"` + p + `","packs":["` + a + `","` + a + `"]}`, false},
		{"trailing comma", `{"version":1,"point":"` + p + `","packs":["` + a + `",]}`, false},
		{"trailing data", `{"version":1,"point":"` + p + `"}{}`, false},
		{"truncated", `{"version":1,"point":"` + p + `","packs":["` + a, false},
		{"pack not a string", `{"version":1,"point":"` + p + `","packs":[1]}`, false},
	} {
		_, err := DecodeStream(strings.NewReader(tc.in), "", func(ID) error { return nil })
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok = %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

// A list naming another point than the one asked for is refused before any
// of its packs is handed on.
func TestDecodeStreamRefusesAnotherPointBeforeItsPacks(t *testing.T) {
	enc, _ := New(p, []string{a, b}).Encode()
	n := 0
	_, err := DecodeStream(bytes.NewReader(enc), a, func(ID) error { n++; return nil })
	if !errors.Is(err, ErrInvalid) || n != 0 {
		t.Fatalf("err %v after %d packs", err, n)
	}
	if _, err := DecodeStream(bytes.NewReader(enc), p, func(ID) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// A reader's failure and fn's refusal are theirs, not the list's.
func TestDecodeStreamPassesOnOtherErrors(t *testing.T) {
	enc, _ := New(p, []string{a, b}).Encode()
	boom := errors.New("boom")
	if _, err := DecodeStream(io.MultiReader(bytes.NewReader(enc[:20]), iotest{boom}), "", func(ID) error { return nil }); !errors.Is(err, boom) || errors.Is(err, ErrInvalid) {
		t.Fatalf("reader failure: %v", err)
	}
	if _, err := DecodeStream(bytes.NewReader(enc), "", func(ID) error { return boom }); !errors.Is(err, boom) || errors.Is(err, ErrInvalid) {
		t.Fatalf("fn's error: %v", err)
	}
}

type iotest struct{ err error }

func (r iotest) Read([]byte) (int, error) { return 0, r.err }

// A list one byte over MaxSize is refused however it is built, and without
// reading further than that.
func TestDecodeStreamRefusesOversizedLists(t *testing.T) {
	r := &packrefstest.Generated{Point: p, N: MaxSize/67 + 10}
	_, err := DecodeStream(r, "", func(ID) error { return nil })
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("oversized list: %v", err)
	}
	if r.Written > MaxSize+64<<10 {
		t.Fatalf("read %d bytes of an oversized list", r.Written)
	}
}

// Streaming the largest list allowed holds next to nothing.
func BenchmarkDecodeStreamMaxSize(b *testing.B) {
	n := (MaxSize - 200) / 67
	b.ReportAllocs()
	for b.Loop() {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		h, err := DecodeStream(&packrefstest.Generated{Point: p, N: n}, "", func(ID) error { return nil })
		runtime.ReadMemStats(&ms1)
		if err != nil || h.Packs != n {
			b.Fatalf("%+v %v", h, err)
		}
		if grew := ms1.TotalAlloc - ms0.TotalAlloc; grew > 1<<20 {
			b.Fatalf("decoding %d packs allocated %d bytes", n, grew)
		}
	}
}

// FuzzDecodeStream checks the streaming decoder against encoding/json: what
// it accepts, json reads the same way, and it accepts whatever Encode writes.
func FuzzDecodeStream(f *testing.F) {
	enc, _ := New(p, []string{a, b}).Encode()
	f.Add(enc)
	f.Add([]byte(`{"version":1,"point":"` + p + `","packs":null}`))
	f.Add([]byte(` {"version":1, "point":"` + p + `" ,"packs":[]} `))
	f.Add([]byte(`{"version":1,"point":"` + p + `","packs":["` + b + `","` + a + `"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var got []string
		h, err := DecodeStream(bytes.NewReader(in), "", func(id ID) error {
			got = append(got, id.String())
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error that is not ErrInvalid from a byte slice: %v", err)
			}
			return
		}
		var r Refs
		if jerr := json.Unmarshal(in, &r); jerr != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", jerr, in)
		}
		if r.Version != h.Version || r.Point != h.Point || !slices.Equal(r.Packs, got) || h.Packs != len(got) {
			t.Fatalf("disagrees with encoding/json: %+v %v vs %+v", h, got, r)
		}
		for i, pk := range got {
			if !ValidID(pk) || i > 0 && got[i-1] >= pk {
				t.Fatalf("unsafe or unsorted pack %q", pk)
			}
		}
		// And it round-trips through Encode.
		re, _ := New(h.Point, got).Encode()
		if _, err := Decode(re); err != nil {
			t.Fatalf("refuses its own encoding: %v", err)
		}
	})
}
