package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// docs/policy.schema.json is written by hand for people and editors; these
// tests keep it in step with Decode and Validate, the authority: the same
// fields, the same limits, every example accepted by both, and each rule a
// schema can express refused by both.

const (
	schemaFile  = "../../docs/policy.schema.json"
	examplesDir = "../../docs/examples"
)

func loadSchema(t *testing.T) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not JSON: %v", schemaFile, err)
	}
	c := jsonschema.NewCompiler()
	const id = "https://github.com/coffer-backup/coffer/blob/main/docs/policy.schema.json"
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatalf("%s does not compile as a JSON Schema: %v", schemaFile, err)
	}
	var raw map[string]any
	json.Unmarshal(b, &raw)
	return sch, raw
}

// both says what the schema and the Go validator (security features on)
// make of a document.
func both(t *testing.T, sch *jsonschema.Schema, b []byte) (schemaErr, goErr error) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	schemaErr = sch.Validate(inst)
	p, goErr := Decode(b)
	if goErr == nil {
		goErr = p.Validate(true)
	}
	return schemaErr, goErr
}

func TestExamplesPassSchemaAndValidator(t *testing.T) {
	sch, _ := loadSchema(t)
	files, _ := filepath.Glob(filepath.Join(examplesDir, "policy-*.json"))
	if len(files) < 3 {
		t.Fatalf("%d example policies in %s, want at least 3", len(files), examplesDir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if serr, gerr := both(t, sch, b); serr != nil || gerr != nil {
			t.Errorf("%s: schema %v; validator %v", f, serr, gerr)
		}
	}
}

// base is a valid policy, as a generic document each case changes.
func base() map[string]any {
	var m map[string]any
	json.Unmarshal([]byte(`{
		"schedule": {"frequency": "daily", "times": ["21:00"], "timeZone": "Europe/London"},
		"retention": {"dailyDays": 30, "weeklyWeeks": 12, "monthlyMonths": 12},
		"include": ["/srv/data"],
		"exclude": ["*.tmp"],
		"throttle": {"enabled": true, "workDays": ["monday"], "workStart": "08:00", "workEnd": "24:00", "workKbps": 512, "nonWorkKbps": 1047552}
	}`), &m)
	return m
}

func section(m map[string]any, name string) map[string]any { return m[name].(map[string]any) }

func TestSchemaAndValidatorRefuseTheSame(t *testing.T) {
	sch, _ := loadSchema(t)
	b, _ := json.Marshal(base())
	if serr, gerr := both(t, sch, b); serr != nil || gerr != nil {
		t.Fatalf("the base policy: schema %v; validator %v", serr, gerr)
	}
	for _, tc := range []struct {
		name   string
		change func(m map[string]any)
	}{
		{"unknown field", func(m map[string]any) { m["schedules"] = 1 }},
		{"unknown schedule field", func(m map[string]any) { section(m, "schedule")["time"] = "21:00" }},
		{"no schedule", func(m map[string]any) { delete(m, "schedule") }},
		{"no retention", func(m map[string]any) { delete(m, "retention") }},
		{"no include", func(m map[string]any) { delete(m, "include") }},
		{"hourly", func(m map[string]any) { section(m, "schedule")["frequency"] = "hourly" }},
		{"weekly without days", func(m map[string]any) { section(m, "schedule")["frequency"] = "weekly" }},
		{"weekly with no day", func(m map[string]any) {
			section(m, "schedule")["frequency"], section(m, "schedule")["days"] = "weekly", []any{}
		}},
		{"daily with days", func(m map[string]any) { section(m, "schedule")["days"] = []any{"monday"} }},
		{"a capitalised day", func(m map[string]any) {
			section(m, "schedule")["frequency"], section(m, "schedule")["days"] = "weekly", []any{"Monday"}
		}},
		{"a day twice", func(m map[string]any) {
			section(m, "schedule")["frequency"], section(m, "schedule")["days"] = "weekly", []any{"monday", "monday"}
		}},
		{"no time", func(m map[string]any) { section(m, "schedule")["times"] = []any{} }},
		{"four times", func(m map[string]any) { section(m, "schedule")["times"] = []any{"01:00", "02:00", "03:00", "04:00"} }},
		{"a quarter past", func(m map[string]any) { section(m, "schedule")["times"] = []any{"21:15"} }},
		{"one digit hour", func(m map[string]any) { section(m, "schedule")["times"] = []any{"9:00"} }},
		{"24:00 as a backup time", func(m map[string]any) { section(m, "schedule")["times"] = []any{"24:00"} }},
		{"a time twice", func(m map[string]any) { section(m, "schedule")["times"] = []any{"21:00", "21:00"} }},
		{"Local zone", func(m map[string]any) { section(m, "schedule")["timeZone"] = "Local" }},
		{"empty zone", func(m map[string]any) { section(m, "schedule")["timeZone"] = "" }},
		{"no daily days", func(m map[string]any) { section(m, "retention")["dailyDays"] = 0 }},
		{"too many daily days", func(m map[string]any) { section(m, "retention")["dailyDays"] = MaxDailyDays + 1 }},
		{"negative weeks", func(m map[string]any) { section(m, "retention")["weeklyWeeks"] = -1 }},
		{"too many weeks", func(m map[string]any) { section(m, "retention")["weeklyWeeks"] = MaxWeeklyWeeks + 1 }},
		{"too many months", func(m map[string]any) { section(m, "retention")["monthlyMonths"] = MaxMonthlyMonths + 1 }},
		{"too many years", func(m map[string]any) { section(m, "retention")["yearlyYears"] = MaxYearlyYears + 1 }},
		{"a fraction of a day", func(m map[string]any) { section(m, "retention")["dailyDays"] = 7.5 }},
		{"weekly day capitalised", func(m map[string]any) { section(m, "retention")["weeklyDay"] = "Sunday" }},
		{"monthly day 29", func(m map[string]any) { section(m, "retention")["monthlyDay"] = 29 }},
		{"yearly month 13", func(m map[string]any) { section(m, "retention")["yearlyMonth"] = 13 }},
		{"unknown retention field", func(m map[string]any) { section(m, "retention")["keepForever"] = true }},
		{"no include path", func(m map[string]any) { m["include"] = []any{} }},
		{"an empty include path", func(m map[string]any) { m["include"] = []any{""} }},
		{"an include path too long", func(m map[string]any) { m["include"] = []any{"/" + strings.Repeat("a", MaxPathLength)} }},
		{"too many include paths", func(m map[string]any) {
			ps := make([]any, MaxPaths+1)
			for i := range ps {
				ps[i] = "/srv/" + strings.Repeat("x", i%50+1)
			}
			m["include"] = ps
		}},
		{"an empty exclude entry", func(m map[string]any) { m["exclude"] = []any{""} }},
		{"throttle without work days", func(m map[string]any) { delete(section(m, "throttle"), "workDays") }},
		{"throttle with no work day", func(m map[string]any) { section(m, "throttle")["workDays"] = []any{} }},
		{"throttle without a rate", func(m map[string]any) { delete(section(m, "throttle"), "workKbps") }},
		{"throttle too slow", func(m map[string]any) { section(m, "throttle")["workKbps"] = MinKbps - 1 }},
		{"throttle too fast", func(m map[string]any) { section(m, "throttle")["nonWorkKbps"] = MaxKbps + 1 }},
		{"work end 25:00", func(m map[string]any) { section(m, "throttle")["workEnd"] = "25:00" }},
		{"work start 24:00", func(m map[string]any) { section(m, "throttle")["workStart"] = "24:00" }},
		{"work start off the half hour", func(m map[string]any) { section(m, "throttle")["workStart"] = "08:10" }},
		{"unknown throttle field", func(m map[string]any) { section(m, "throttle")["burst"] = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.change(m)
			b, _ := json.Marshal(m)
			serr, gerr := both(t, sch, b)
			if serr == nil || gerr == nil {
				t.Errorf("schema says %v; validator says %v; want both to refuse\n%s", serr, gerr, b)
			}
		})
	}
}

// TestRulesOnlyTheValidatorKnows: what the schema lists in x-coffer-rules
// is accepted by the schema and refused by the validator, so the list is
// needed and true.
func TestRulesOnlyTheValidatorKnows(t *testing.T) {
	sch, raw := loadSchema(t)
	if rules, _ := raw["x-coffer-rules"].([]any); len(rules) < 6 {
		t.Fatalf("x-coffer-rules lists %d rules", len(rules))
	}
	for _, tc := range []struct {
		name   string
		change func(m map[string]any)
	}{
		{"an unknown zone", func(m map[string]any) { section(m, "schedule")["timeZone"] = "Mars/Olympus_Mons" }},
		{"too many points in all", func(m map[string]any) {
			section(m, "schedule")["times"] = []any{"01:00", "02:00", "03:00"}
			section(m, "retention")["dailyDays"] = 4000
		}},
		{"below the security minimum", func(m map[string]any) { section(m, "retention")["dailyDays"] = 3 }},
		{"a relative include path", func(m map[string]any) { m["include"] = []any{"srv/data"} }},
		{"an include path with ..", func(m map[string]any) { m["include"] = []any{"/srv/../etc"} }},
		{"work hours backwards", func(m map[string]any) {
			section(m, "throttle")["workStart"], section(m, "throttle")["workEnd"] = "18:00", "08:00"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.change(m)
			b, _ := json.Marshal(m)
			serr, gerr := both(t, sch, b)
			if serr != nil || gerr == nil {
				t.Errorf("schema says %v (want accepted); validator says %v (want refused)", serr, gerr)
			}
		})
	}
}

// TestSchemaHasTheStructsFieldsAndLimits: a field or limit added to the Go
// types without the schema fails here.
func TestSchemaHasTheStructsFieldsAndLimits(t *testing.T) {
	_, raw := loadSchema(t)
	props := func(m map[string]any) map[string]any { return m["properties"].(map[string]any) }
	for _, tc := range []struct {
		typ    reflect.Type
		schema map[string]any
	}{
		{reflect.TypeFor[Policy](), raw},
		{reflect.TypeFor[Schedule](), props(raw)["schedule"].(map[string]any)},
		{reflect.TypeFor[Retention](), props(raw)["retention"].(map[string]any)},
		{reflect.TypeFor[Throttle](), props(raw)["throttle"].(map[string]any)},
	} {
		var fields, inSchema []string
		for f := range tc.typ.Fields() {
			fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		for name := range props(tc.schema) {
			inSchema = append(inSchema, name)
		}
		if !sameSet(fields, inSchema) {
			t.Errorf("%s has fields %v; the schema has %v", tc.typ.Name(), fields, inSchema)
		}
	}
	retention := props(props(raw)["retention"].(map[string]any))
	throttle := props(props(raw)["throttle"].(map[string]any))
	times := props(props(raw)["schedule"].(map[string]any))["times"].(map[string]any)
	for _, tc := range []struct {
		what string
		got  any
		want int
	}{
		{"dailyDays maximum", retention["dailyDays"].(map[string]any)["maximum"], MaxDailyDays},
		{"weeklyWeeks maximum", retention["weeklyWeeks"].(map[string]any)["maximum"], MaxWeeklyWeeks},
		{"monthlyMonths maximum", retention["monthlyMonths"].(map[string]any)["maximum"], MaxMonthlyMonths},
		{"yearlyYears maximum", retention["yearlyYears"].(map[string]any)["maximum"], MaxYearlyYears},
		{"times maxItems", times["maxItems"], MaxTimesPerDay},
		{"include maxItems", props(raw)["include"].(map[string]any)["maxItems"], MaxPaths},
		{"exclude maxItems", props(raw)["exclude"].(map[string]any)["maxItems"], MaxPaths},
		{"workKbps minimum", throttle["workKbps"].(map[string]any)["minimum"], MinKbps},
		{"workKbps maximum", throttle["workKbps"].(map[string]any)["maximum"], MaxKbps},
		{"nonWorkKbps maximum", throttle["nonWorkKbps"].(map[string]any)["maximum"], MaxKbps},
	} {
		if n, ok := tc.got.(float64); !ok || int(n) != tc.want {
			t.Errorf("schema's %s is %v; shared/policy says %d", tc.what, tc.got, tc.want)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
	}
	return true
}
