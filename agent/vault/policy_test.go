package vault

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/reqsign"
)

// policyServer serves /agent/policy: body and status set by the test,
// 304 when the request carries the served ETag.
func policyServer(t *testing.T, status *int, body *string) *Session {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/agent/policy" {
			http.NotFound(w, r)
			return
		}
		if strings.Contains(r.Header.Get("If-None-Match"), `"7"`) && *status == http.StatusOK {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(*status)
		io.WriteString(w, *body)
	}))
	t.Cleanup(srv.Close)
	_, key, err := reqsign.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return newSession(t.TempDir(), &Config{ControlPlaneURL: srv.URL, MachineID: "m1"}, key)
}

// The one way the agent reads its policy: decoded, unchanged, none
// assigned, or one this agent cannot use (still named).
func TestPolicyFetchedDecodedOrExplained(t *testing.T) {
	status := http.StatusOK
	body := `{"name":"daily","etag":"\"7\"","policy":{"schedule":{"frequency":"daily","times":["21:00"],"timeZone":"UTC"},` +
		`"retention":{"dailyDays":30},"include":["/srv"],"throttle":{"enabled":false}}}`
	s := policyServer(t, &status, &body)
	ctx := t.Context()

	p, err := s.Policy(ctx, "")
	if err != nil || p == nil || p.Doc.Name != "daily" || p.Policy == nil || p.Include[0] != "/srv" {
		t.Fatalf("first fetch: %+v, %v", p, err)
	}
	if p, err := s.Policy(ctx, p.Doc.ETag); p != nil || err != nil {
		t.Fatalf("unchanged: %+v, %v; want nil, nil", p, err)
	}

	body = `{"name":"future","etag":"\"8\"","policy":{"schedule":{},"retention":{},"include":[],"ruleFromANewerVersion":1}}`
	p, err = s.Policy(ctx, "")
	if err == nil || p == nil || p.Doc.Name != "future" || p.Policy != nil || !strings.Contains(err.Error(), "future") {
		t.Fatalf("undecodable: %+v, %v; want the document and an error naming it", p, err)
	}

	status, body = http.StatusNotFound, `{"code":"not_found","message":"no policy is assigned to m1"}`
	if p, err := s.Policy(ctx, ""); p != nil || !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("none assigned: %+v, %v; want ErrNoPolicy", p, err)
	}
}
