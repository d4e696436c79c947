package cpclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// sent is one request as the server saw it.
type sent struct {
	method, path, query, pin, body string
}

// recorder answers every request with {} and remembers it.
func recorder(t *testing.T, answer func(w http.ResponseWriter, r *http.Request) bool) (*Client, func() sent) {
	t.Helper()
	var last sent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		last = sent{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get(wire.PINHeader), string(b)}
		if answer != nil && answer(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "s") && r.Method == http.MethodGet {
			io.WriteString(w, "[]")
			return
		}
		io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL + "/", Token: "t"}, func() sent { return last }
}

// Every typed method sends its route's method, path, query, body and PIN.
func TestMethodsSendTheirRoute(t *testing.T) {
	c, last := recorder(t, nil)
	ctx := t.Context()
	since := time.Date(2026, 1, 2, 14, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		call func() error
		want sent
	}{
		{"register", func() error { _, err := c.Register(ctx, wire.Register{VaultID: "v"}); return err },
			sent{method: "POST", path: "/api/v1/register", body: `"vaultId":"v"`}},
		{"agent machine", func() error { _, err := c.AgentMachine(ctx); return err }, sent{method: "GET", path: "/api/v1/agent/machine"}},
		{"sas", func() error { _, err := c.SAS(ctx); return err }, sent{method: "POST", path: "/api/v1/agent/sas"}},
		{"start job", func() error { _, err := c.StartJob(ctx, wire.JobBackup); return err },
			sent{method: "POST", path: "/api/v1/agent/jobs", body: `{"type":"backup"}`}},
		{"report job", func() error { return c.ReportJob(ctx, "j/1", wire.JobReport{Status: wire.StatusCompleted}) },
			sent{method: "POST", path: "/api/v1/agent/jobs/j%2F1", body: `"status":"completed"`}},
		{"agent jobs", func() error {
			_, err := c.AgentJobs(ctx, JobFilter{Machine: "ignored", Type: wire.JobBackup, Limit: 1})
			return err
		},
			sent{method: "GET", path: "/api/v1/agent/jobs", query: "limit=1&type=backup"}},
		{"add point", func() error { return c.AddPoint(ctx, wire.NewPoint{ID: "p", JobID: "j"}) },
			sent{method: "POST", path: "/api/v1/agent/points", body: `{"id":"p","jobId":"j"}`}},
		{"agent points with deleted", func() error { _, err := c.AgentPointsWithDeleted(ctx); return err },
			sent{method: "GET", path: "/api/v1/agent/points", query: "deleted=include"}},
		{"approve passphrase change", func() error { return c.ApprovePassphraseChange(ctx, "1234") },
			sent{method: "POST", path: "/api/v1/agent/passphrase-change", pin: "1234"}},
		{"retire key", func() error { return c.RetireKey(ctx, "k1", "k2") },
			sent{method: "POST", path: "/api/v1/agent/retire-key", body: `{"key":"k1","replacement":"k2"}`}},
		{"restore access", func() error { _, err := c.RestoreAccess(ctx, "m2"); return err },
			sent{method: "POST", path: "/api/v1/agent/restore-access", body: `{"source":"m2"}`}},

		{"create vault", func() error { _, err := c.CreateVault(ctx, wire.NewVault{Name: "lab"}); return err },
			sent{method: "POST", path: "/api/v1/vaults", body: `{"name":"lab"}`}},
		{"vaults", func() error { _, err := c.Vaults(ctx); return err }, sent{method: "GET", path: "/api/v1/vaults"}},
		{"vault", func() error { _, err := c.Vault(ctx, "v1"); return err }, sent{method: "GET", path: "/api/v1/vaults/v1"}},
		{"update vault", func() error {
			off := false
			_, err := c.UpdateVault(ctx, "v1", wire.VaultUpdate{SecurityFeatures: &off}, "99")
			return err
		},
			sent{method: "PATCH", path: "/api/v1/vaults/v1", pin: "99", body: `{"securityFeatures":false}`}},
		{"delete vault", func() error { return c.DeleteVault(ctx, "v1", "99") },
			sent{method: "DELETE", path: "/api/v1/vaults/v1", pin: "99"}},
		{"credentials", func() error { _, err := c.NewCredentials(ctx, "v1"); return err }, sent{method: "POST", path: "/api/v1/vaults/v1/credentials"}},
		{"pin", func() error { _, err := c.NewPIN(ctx, "v1"); return err }, sent{method: "POST", path: "/api/v1/vaults/v1/pin"}},
		{"policies", func() error { _, err := c.Policies(ctx, "v1"); return err }, sent{method: "GET", path: "/api/v1/vaults/v1/policies"}},
		{"policy", func() error { _, err := c.Policy(ctx, "v1", "gold plan"); return err },
			sent{method: "GET", path: "/api/v1/vaults/v1/policies/gold%20plan"}},
		{"put policy", func() error { _, err := c.PutPolicy(ctx, "v1", "gold", json.RawMessage(`{"x":1}`), ""); return err },
			sent{method: "PUT", path: "/api/v1/vaults/v1/policies/gold", body: `{"x":1}`}},
		{"delete policy", func() error { return c.DeletePolicy(ctx, "v1", "gold", "") },
			sent{method: "DELETE", path: "/api/v1/vaults/v1/policies/gold"}},
		{"machines", func() error { _, err := c.Machines(ctx, "v1"); return err }, sent{method: "GET", path: "/api/v1/vaults/v1/machines"}},
		{"machine", func() error { _, err := c.Machine(ctx, "v1", "m1"); return err }, sent{method: "GET", path: "/api/v1/vaults/v1/machines/m1"}},
		{"assign policy", func() error {
			_, err := c.AssignPolicy(ctx, "v1", "m1", wire.AssignPolicy{Policy: "gold", PIN: "42"})
			return err
		}, sent{method: "PUT", path: "/api/v1/vaults/v1/machines/m1/policy", body: `{"policy":"gold","pin":"42"}`}},
		{"stop", func() error {
			_, err := c.StopProtection(ctx, "v1", "m1", wire.StopProtection{DeleteData: true}, "7")
			return err
		},
			sent{method: "POST", path: "/api/v1/vaults/v1/machines/m1/stop", pin: "7", body: `{"deleteData":true}`}},
		{"resume", func() error { _, err := c.ResumeProtection(ctx, "v1", "m1"); return err },
			sent{method: "POST", path: "/api/v1/vaults/v1/machines/m1/resume"}},
		{"undelete machine", func() error { _, err := c.UndeleteMachine(ctx, "v1", "m1"); return err },
			sent{method: "POST", path: "/api/v1/vaults/v1/machines/m1/undelete"}},
		{"grant restore", func() error { _, err := c.GrantRestore(ctx, "v1", "m1", "m2"); return err },
			sent{method: "POST", path: "/api/v1/vaults/v1/machines/m1/restore-grant", body: `{"source":"m2"}`}},
		{"points", func() error { _, err := c.Points(ctx, "v1", "m1", true); return err },
			sent{method: "GET", path: "/api/v1/vaults/v1/machines/m1/points", query: "deleted=include"}},
		{"delete point", func() error { _, err := c.DeletePoint(ctx, "v1", "m1", "p1", "5"); return err },
			sent{method: "DELETE", path: "/api/v1/vaults/v1/machines/m1/points/p1", pin: "5"}},
		{"undelete point", func() error { _, err := c.UndeletePoint(ctx, "v1", "m1", "p1"); return err },
			sent{method: "POST", path: "/api/v1/vaults/v1/machines/m1/points/p1/undelete"}},
		{"deleted keys", func() error { _, err := c.DeletedKeys(ctx, "v1", "m1"); return err },
			sent{method: "GET", path: "/api/v1/vaults/v1/machines/m1/deleted-keys"}},
		{"undelete key", func() error { _, err := c.UndeleteKey(ctx, "v1", "m1", "k1"); return err },
			sent{method: "POST", path: "/api/v1/vaults/v1/machines/m1/deleted-keys/k1/undelete"}},
		{"jobs", func() error {
			_, err := c.Jobs(ctx, "v1", JobFilter{Machine: "m1", Status: wire.StatusFailed, Since: since.In(time.FixedZone("x", 3600)), Limit: 5})
			return err
		}, sent{method: "GET", path: "/api/v1/vaults/v1/jobs", query: "limit=5&machine=m1&since=2026-01-02T14%3A04%3A05Z&status=failed"}},
		{"alerts", func() error { _, err := c.Alerts(ctx, "v1", AlertFilter{Unacknowledged: true}); return err },
			sent{method: "GET", path: "/api/v1/vaults/v1/alerts", query: "acknowledged=false"}},
		{"ack alert", func() error { _, err := c.AckAlert(ctx, "v1", "a1"); return err },
			sent{method: "POST", path: "/api/v1/vaults/v1/alerts/a1/acknowledge"}},
		{"approvals", func() error { _, err := c.Approvals(ctx, "v1", wire.ApprovalPending); return err },
			sent{method: "GET", path: "/api/v1/vaults/v1/approvals", query: "status=pending"}},
		{"approval", func() error { _, err := c.Approval(ctx, "v1", "r1"); return err },
			sent{method: "GET", path: "/api/v1/vaults/v1/approvals/r1"}},
		{"approve", func() error { _, err := c.Approve(ctx, "v1", "r1", "ticket 7"); return err },
			sent{method: "POST", path: "/api/v1/vaults/v1/approvals/r1/approve", body: `{"note":"ticket 7"}`}},
		{"reject", func() error { _, err := c.Reject(ctx, "v1", "r1", ""); return err },
			sent{method: "POST", path: "/api/v1/vaults/v1/approvals/r1/reject", body: `{}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			got := last()
			if got.method != tc.want.method || got.path != tc.want.path || got.query != tc.want.query || got.pin != tc.want.pin ||
				!strings.Contains(got.body, tc.want.body) || (tc.want.body == "" && got.body != "") {
				t.Fatalf("sent %+v, want %+v", got, tc.want)
			}
		})
	}
}

// An operation multi-user authorization turned into a request is an
// error carrying the request, never a success decoded as the operation's
// answer.
func TestPendingApprovalIsAnError(t *testing.T) {
	c, _ := recorder(t, func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set(wire.ApprovalHeader, "r1")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"id":"r1","vaultId":"v1","operation":"delete a recovery point of pc","status":"pending"}`)
		return true
	})
	p, err := c.DeletePoint(t.Context(), "v1", "m1", "p1", "")
	a, ok := Pending(err)
	if !ok || a.ID != "r1" || a.Status != wire.ApprovalPending || p.ID != "" || !strings.Contains(err.Error(), "approvals approve v1 r1") {
		t.Fatalf("point %+v, err %v", p, err)
	}
}

// The agent's policy: changed, unchanged (304 with the ETag) or none.
func TestAgentPolicyAnswers(t *testing.T) {
	assigned := true
	c, _ := recorder(t, func(w http.ResponseWriter, r *http.Request) bool {
		if !assigned {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"code":"not_found","message":"no policy assigned"}`)
			return true
		}
		if r.Header.Get("If-None-Match") == `"7"` {
			w.WriteHeader(http.StatusNotModified)
			return true
		}
		io.WriteString(w, `{"name":"daily","etag":"\"7\"","policy":{}}`)
		return true
	})
	doc, changed, err := c.AgentPolicy(t.Context(), "")
	if err != nil || !changed || doc.Name != "daily" || doc.ETag != `"7"` {
		t.Fatalf("first fetch: %+v changed=%v %v", doc, changed, err)
	}
	doc, changed, err = c.AgentPolicy(t.Context(), doc.ETag)
	if err != nil || changed || doc.Name != "" {
		t.Fatalf("unchanged: %+v changed=%v %v", doc, changed, err)
	}
	assigned = false
	_, _, err = c.AgentPolicy(t.Context(), `"7"`)
	if !errors.Is(err, ErrNoPolicy) || Code(err) != wire.CodeNotFound {
		t.Fatalf("no policy: %v (code %q), want ErrNoPolicy with not_found", err, Code(err))
	}
}

// KeepAnswer keeps the body as received, fields unknown to wire included.
func TestKeepAnswerKeepsTheBodyAsReceived(t *testing.T) {
	const body = `{"id":"v1","name":"lab","futureField":[1,2]}`
	c, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) bool { io.WriteString(w, body); return true })
	var raw json.RawMessage
	v, err := c.Vault(KeepAnswer(t.Context(), &raw), "v1")
	if err != nil || v.Name != "lab" || string(raw) != body {
		t.Fatalf("vault %+v, raw %s, %v", v, raw, err)
	}
}

// Errors keep the API's code; an answer that is not JSON says so.
func TestErrorsCarryTheirCode(t *testing.T) {
	html := false
	c, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) bool {
		if html {
			io.WriteString(w, "<html>a login page</html>")
			return true
		}
		w.Header().Set("Retry-After", "90")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"code":"pin_required","message":"generate a PIN"}`)
		return true
	})
	_, err := c.StopProtection(t.Context(), "v", "m", wire.StopProtection{DeleteData: true}, "")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || Code(err) != wire.CodePINRequired || se.RetryAfter != 90*time.Second {
		t.Fatalf("err = %v", err)
	}
	html = true
	if _, err := c.Vaults(t.Context()); !errors.Is(err, ErrBadAnswer) {
		t.Fatalf("HTML answer: %v, want ErrBadAnswer", err)
	}
}

// A machine's requests carry its signature; reqsign's tests check it.
func TestAgentRequestsAreSigned(t *testing.T) {
	_, priv, err := reqsign.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	perr := errors.New("no request")
	machine := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, perr = reqsign.Parse(r)
		machine = r.Header.Get(reqsign.HeaderMachine)
		io.WriteString(w, "{}")
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, MachineID: "m1", Key: priv}
	if err := c.AddPoint(context.Background(), wire.NewPoint{ID: "p"}); err != nil {
		t.Fatal(err)
	}
	if perr != nil || machine != "m1" {
		t.Fatalf("signature: %v, machine %q", perr, machine)
	}
}
