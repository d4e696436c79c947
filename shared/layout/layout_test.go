package layout

import (
	"strings"
	"testing"
)

func TestNamesRoundTrip(t *testing.T) {
	id := "3f" + strings.Repeat("0a", 31)
	for _, tc := range []struct {
		name  string
		want  string
		parse func(string) (string, bool)
	}{
		{Pack(id), "data/3f/" + id, ParsePack},
		{Key(id), "keys/" + id, ParseKey},
		{Index(id), "index/" + id, ParseIndex},
		{Point(id), "points/" + id, ParsePoint},
		{Refs(id), "refs/" + id, ParseRefs},
	} {
		if tc.name != tc.want {
			t.Errorf("name %q, want %q", tc.name, tc.want)
		}
		if got, ok := tc.parse(tc.name); !ok || got != id {
			t.Errorf("parse %q = %q, %v", tc.name, got, ok)
		}
	}
}

func TestParseRefusesWhatWeDoNotWrite(t *testing.T) {
	id := "3f" + strings.Repeat("0a", 31)
	for _, name := range []string{
		"data/" + id,                     // no fan-out folder
		"data/00/" + id,                  // the wrong fan-out folder
		"data/3f/" + id + "x",            // too long
		"data/3f/" + strings.ToUpper(id), // upper case
		"index/3f/" + id,                 // another prefix
		"data/3f/" + id[:63],             // too short
		"data/3f/" + id[:62] + "g0",      // not hex
		"data/3f/.tmp-" + id[:59],        // a local writer's temporary file
		"",
	} {
		if got, ok := ParsePack(name); ok {
			t.Errorf("ParsePack(%q) = %q, accepted", name, got)
		}
	}
	for _, name := range []string{"points/", "points/" + id + "/x", "points/../" + id[3:], "refs/" + strings.ToUpper(id), "refs" + id} {
		_, p := ParsePoint(name)
		_, r := ParseRefs(name)
		if p || r {
			t.Errorf("%q accepted", name)
		}
	}
}

func TestValidID(t *testing.T) {
	if !ValidID(strings.Repeat("a", 64)) || !ValidID(strings.Repeat("9", 64)) {
		t.Fatal("valid IDs refused")
	}
	for _, s := range []string{"", strings.Repeat("a", 63), strings.Repeat("a", 65), strings.Repeat("A", 64), strings.Repeat("g", 64), "../" + strings.Repeat("a", 61)} {
		if ValidID(s) {
			t.Errorf("ValidID(%q)", s)
		}
	}
}
