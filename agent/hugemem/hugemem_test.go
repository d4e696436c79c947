package hugemem

import "testing"

// Make is make: the length asked for, zeroed, at any size and element type.
func TestMakeIsMake(t *testing.T) {
	type node struct {
		name []byte
		size int64
		sub  *int
	}
	for _, n := range []int{0, 1, 1000, minBytes/40 + 1, 3 * minBytes / 40} {
		s := Make[node](n)
		if len(s) != n || cap(s) != n {
			t.Fatalf("Make(%d): len %d cap %d", n, len(s), cap(s))
		}
		for i := range s {
			if s[i].name != nil || s[i].size != 0 || s[i].sub != nil {
				t.Fatalf("Make(%d)[%d] is not zero", n, i)
			}
			s[i].size = int64(i) // writable throughout
		}
	}
	if b := Make[byte](minBytes + 3); len(b) != minBytes+3 {
		t.Fatalf("Make[byte]: len %d", len(b))
	}
}
