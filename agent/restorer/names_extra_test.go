package restorer

import (
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// Names a Linux point can hold that Windows cannot take as they are, even
// without a refused character: bytes that are not UTF-8, and names a
// mapping makes longer than NTFS's 255 UTF-16 units.
func TestWindowsNamesNotUTF8OrTooLongAreMappedAndStable(t *testing.T) {
	long := "CON." + strings.Repeat("x", 240) + ".log" // 248 bytes, and a device
	longer := strings.Repeat("é", 127) + "?"           // 255 bytes on Linux, fits after mapping
	tooLong := "CON." + strings.Repeat("y", 251)       // 255 bytes; CON_ makes 256
	for _, c := range []struct {
		name, want string
	}{
		{"caf\xe9.txt", "caf%E9.txt"},
		{"\xff\xfe", "%FF%FE"},
		{long, "CON_." + strings.Repeat("x", 240) + ".log"},
		{longer, strings.Repeat("é", 127) + "？"},
	} {
		got, renamed, err := LocalName(c.name, "windows")
		if err != nil || got != c.want || !renamed {
			t.Errorf("LocalName(%q) = %q, %t, %v; want %q, renamed", c.name, got, renamed, err, c.want)
		}
	}
	got, renamed, err := LocalName(tooLong, "windows")
	if err != nil || !renamed {
		t.Fatalf("LocalName(too long) = %q, %t, %v", got, renamed, err)
	}
	if n := len(utf16.Encode([]rune(got))); n > 255 || !strings.HasPrefix(got, "CON_.yyy") || !strings.Contains(got, "~") {
		t.Errorf("too long a name became %q (%d UTF-16 units); want CON_.yyy… cut to 255 with a ~hash", got, n)
	}
	other, _, _ := LocalName(tooLong[:len(tooLong)-1]+"z", "windows")
	if other == got {
		t.Errorf("two long names that differ only at the end map to the same %q", got)
	}
	for _, name := range []string{"caf\xe9.txt", tooLong, long} {
		m, _, _ := LocalName(name, "windows")
		if !utf8.ValidString(m) {
			t.Errorf("%q maps to %q, not UTF-8", name, m)
		}
		if again, re, err := LocalName(m, "windows"); err != nil || re || again != m {
			t.Errorf("the mapping of %q is not stable: %q → %q, %t, %v", name, m, again, re, err)
		}
	}
}
