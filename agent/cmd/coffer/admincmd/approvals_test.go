package admincmd

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Multi-user authorization from the command line: an operation that needs
// a PIN, asked with --reason and no PIN, is sent and reported as waiting
// with the command that approves it; list, show, approve and reject call
// their routes and print the request.
func TestAdminApprovals(t *testing.T) {
	cp := newFakeCP(t)
	base := "/api/v1/vaults/" + admProdID
	req := wire.Approval{ID: "r1", VaultID: admProdID, Operation: "stop protection and delete backup data of web-01",
		Method: "POST", Path: "/vaults/" + admProdID + "/machines/" + admWebID + "/stop", Body: []byte(`{"deleteData":true}`),
		Reason: "decommissioned\nfor good", RequestedBy: "ann@contoso.com", RequestedAt: admT0, ExpiresAt: admT0.Add(24 * time.Hour),
		Status: wire.ApprovalPending}
	var reason string
	cp.fail["POST "+base+"/machines/"+admWebID+"/stop"] = func(w http.ResponseWriter) {
		w.Header().Set(wire.ApprovalHeader, req.ID)
		cp.json(w, http.StatusAccepted, req)
	}
	_, err := runAdminCapture(&reason, "stop", "prod", "web-01", "--delete-data", "--reason", "decommissioned")
	if err == nil || !strings.Contains(err.Error(), "approvals approve "+admProdID+" r1") {
		t.Fatalf("a request: %v", err)
	}
	if got := cp.last(); got.pin != "" || reason != "decommissioned" {
		t.Fatalf("sent PIN %q, reason %q", got.pin, reason)
	}

	cp.fail["GET "+base+"/approvals"] = func(w http.ResponseWriter) { cp.json(w, http.StatusOK, []wire.Approval{req}) }
	out, err := runAdmin("approvals", "list", "prod", "--status", "pending")
	if err != nil || !strings.Contains(out, "r1") || !strings.Contains(out, "pending") || !strings.Contains(out, "ann@contoso.com") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if got := cp.last(); got.query != "status=pending" {
		t.Fatalf("list sent %+v", got)
	}
	if out, err := runAdmin("vault", "show", "prod"); err != nil || !strings.Contains(out, "Pending approvals") || !strings.Contains(out, "1: `coffer admin approvals list prod --status pending`") {
		t.Fatalf("vault show: %v\n%s", err, out)
	}
	if _, err := runAdmin("approvals", "list", "prod", "--status", "maybe"); err == nil {
		t.Fatal("a wrong --status was sent")
	}
	cp.fail["GET "+base+"/approvals/r1"] = func(w http.ResponseWriter) { cp.json(w, http.StatusOK, req) }
	out, err = runAdmin("approvals", "show", "prod", "r1")
	if err != nil || !strings.Contains(out, `{"deleteData":true}`) || !strings.Contains(out, "decommissioned for good") {
		t.Fatalf("show: %v\n%s", err, out)
	}

	done := req
	done.Status, done.DecidedBy, done.Result = wire.ApprovalExecuted, "bob@contoso.com", &wire.ApprovalResult{Status: 200}
	cp.fail["POST "+base+"/approvals/r1/approve"] = func(w http.ResponseWriter) { cp.json(w, http.StatusOK, done) }
	out, err = runAdmin("approvals", "approve", "prod", "r1", "--note", "ticket 7")
	if err != nil || !strings.Contains(out, "executed") || strings.TrimSpace(cp.last().body) != `{"note":"ticket 7"}` {
		t.Fatalf("approve: %v, sent %q\n%s", err, cp.last().body, out)
	}
	failed := done
	failed.Status, failed.Result = wire.ApprovalFailed, &wire.ApprovalResult{Status: 409, Code: wire.CodeConflict, Message: "machine web-01 is deleted"}
	cp.fail["POST "+base+"/approvals/r1/approve"] = func(w http.ResponseWriter) { cp.json(w, http.StatusOK, failed) }
	if _, err := runAdmin("approvals", "approve", "prod", "r1"); err == nil || !strings.Contains(err.Error(), "machine web-01 is deleted") {
		t.Fatalf("an approved request the control plane refused: %v", err)
	}
	cp.fail["POST "+base+"/approvals/r1/reject"] = func(w http.ResponseWriter) {
		cp.json(w, http.StatusForbidden, wire.Error{Code: wire.CodeForbidden, Message: "ann@contoso.com asked for it, so another Backup Security Admin must decide it"})
	}
	if _, err := runAdmin("approvals", "reject", "prod", "r1"); err == nil || !strings.Contains(err.Error(), "another Backup Security Admin") {
		t.Fatalf("reject by the requester: %v", err)
	}
}

// runAdminCapture is runAdmin that also records the X-Coffer-Reason the
// last request carried.
func runAdminCapture(reason *string, args ...string) (string, error) {
	prev := http.DefaultTransport
	http.DefaultTransport = roundTrip(func(r *http.Request) (*http.Response, error) {
		*reason = r.Header.Get(wire.ReasonHeader)
		return prev.RoundTrip(r)
	})
	defer func() { http.DefaultTransport = prev }()
	return runAdmin(args...)
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
