package admincmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/policy"
)

func TestPolicyTemplateIsAValidCommentedPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		zone string
		path string
	}{
		{"defaults", nil, "UTC", ""},
		{"zone and paths", []string{"--time-zone", "Australia/Lord_Howe", "--path", "/srv/share", "--path", `\\server\scans`}, "Australia/Lord_Howe", `\\server\scans`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runAdmin(append([]string{"policy", "template"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(out, "//") < 10 {
				t.Errorf("the template has few comments:\n%s", out)
			}
			p, err := policy.Decode(stripComments([]byte(out)))
			if err != nil {
				t.Fatalf("decode: %v\n%s", err, out)
			}
			if err := p.Validate(true); err != nil {
				t.Fatalf("validate with security features on: %v", err)
			}
			if p.Schedule.TimeZone != tc.zone || (tc.path != "" && p.Include[len(p.Include)-1] != tc.path) {
				t.Errorf("zone %q, include %q", p.Schedule.TimeZone, p.Include)
			}
		})
	}
	for _, bad := range [][]string{{"--time-zone", "Local"}, {"--time-zone", "Mars/Base"}, {"--path", "relative/dir"}} {
		if _, err := runAdmin(append([]string{"policy", "template"}, bad...)...); cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("template %v: %v, want a usage error", bad, err)
		}
	}
}

// `policy set` takes the template as printed: comments go, the rest is sent.
func TestPolicySetTakesACommentedFile(t *testing.T) {
	cp := newFakeCP(t)
	tmpl, err := runAdmin("policy", "template", "--time-zone", "Europe/Paris", "--path", "/srv/x")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(file, []byte(tmpl), 0o600)
	if _, err := runAdmin("policy", "set", "prod", "gold", "-f", file); err != nil {
		t.Fatal(err)
	}
	sent := cp.last()
	var p policy.Policy
	if sent.method != "PUT" || !strings.HasSuffix(sent.path, "/policies/gold") || strings.Contains(sent.body, "//") ||
		json.Unmarshal([]byte(sent.body), &p) != nil || p.Schedule.TimeZone != "Europe/Paris" {
		t.Fatalf("sent %+v", sent)
	}
}

func TestStripComments(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"// all\n{}", "\n{}"},
		{`{"a": 1} // trailing`, `{"a": 1} `},
		{`{"url": "//server/share"}`, `{"url": "//server/share"}`},
		{`{"q": "say \"//\" here"} // c`, `{"q": "say \"//\" here"} `},
		{`{"p": "C:\\"} // c`, `{"p": "C:\\"} `},
		{"{\"a\": 1, // one\n\"b\": 2}", "{\"a\": 1, \n\"b\": 2}"},
		{`{"a": "/"}`, `{"a": "/"}`},
	} {
		if got := string(stripComments([]byte(tc.in))); got != tc.want {
			t.Errorf("stripComments(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
