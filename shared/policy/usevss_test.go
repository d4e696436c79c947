package policy

import (
	"encoding/json"
	"testing"
)

// useVSS is optional and true when absent; anything but a JSON boolean is
// refused by Decode and by the schema alike.
func TestUseVSSDefaultsToTrueAndTakesOnlyABoolean(t *testing.T) {
	sch, _ := loadSchema(t)
	for _, tc := range []struct {
		name    string
		value   any // nil: the field is absent
		ok, vss bool
	}{
		{"absent", nil, true, true},
		{"true", true, true, true},
		{"false", false, true, false},
		{"string", "false", false, false},
		{"number", 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			if tc.value != nil {
				m["useVSS"] = tc.value
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			schemaErr, goErr := both(t, sch, b)
			if (schemaErr == nil) != tc.ok || (goErr == nil) != tc.ok {
				t.Fatalf("useVSS %v: schema %v, Decode+Validate %v; want ok=%v", tc.value, schemaErr, goErr, tc.ok)
			}
			if !tc.ok {
				return
			}
			p, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if p.VSS() != tc.vss {
				t.Errorf("useVSS %v: VSS() = %v, want %v", tc.value, p.VSS(), tc.vss)
			}
		})
	}
}
