package packrefs

import (
	"strings"
	"testing"
)

var (
	a = strings.Repeat("a", 64)
	b = strings.Repeat("b", 64)
	p = strings.Repeat("0", 63) + "1"
)

func TestRoundTripSortsAndDeduplicates(t *testing.T) {
	r := New(p, []string{b, a, b})
	enc, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Point != p || len(got.Packs) != 2 || got.Packs[0] != a || got.Packs[1] != b {
		t.Fatalf("decoded %+v", got)
	}
	if PackName(a) != "data/aa/"+a || Name(p) != "refs/"+p {
		t.Fatal("object names")
	}
}

func TestDecodeRefusesBadLists(t *testing.T) {
	for name, in := range map[string]string{
		"not JSON":      `{`,
		"wrong version": `{"version":2,"point":"` + p + `","packs":[]}`,
		"bad point":     `{"version":1,"point":"../x","packs":[]}`,
		"bad pack":      `{"version":1,"point":"` + p + `","packs":["ZZ"]}`,
		"upper case":    `{"version":1,"point":"` + strings.ToUpper(a) + `","packs":[]}`,
		"unsorted":      `{"version":1,"point":"` + p + `","packs":["` + b + `","` + a + `"]}`,
		"duplicate":     `{"version":1,"point":"` + p + `","packs":["` + a + `","` + a + `"]}`,
	} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"point":"` + p + `","packs":["` + a + `"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := Decode(in)
		if err != nil {
			return
		}
		// Whatever is accepted is safe to turn into object names.
		for _, pk := range r.Packs {
			if !strings.HasPrefix(PackName(pk), "data/") || strings.Contains(pk, "/") {
				t.Fatalf("unsafe pack name %q", pk)
			}
		}
	})
}
