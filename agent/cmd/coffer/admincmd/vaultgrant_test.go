package admincmd

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/wire"
)

func TestAdminVaultCreateChecksTheNameFirst(t *testing.T) {
	cp := newFakeCP(t)
	for _, bad := range []string{"branch offices", "-x", "0123456789abcdef0123", strings.Repeat("v", 65)} {
		_, err := runAdmin("vault", "create", bad)
		if cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("vault create %q: %v, want a usage error", bad, err)
		}
	}
	if n := len(cp.requests()); n != 0 {
		t.Fatalf("%d requests sent for names the control plane refuses", n)
	}
	if out, err := runAdmin("vault", "create", "branch-offices"); err != nil || !strings.Contains(out, "branch-offices") {
		t.Fatalf("a good name: %v\n%s", err, out)
	}
}

func TestAdminVaultDelete(t *testing.T) {
	cp := newFakeCP(t)
	path := "/api/v1/vaults/" + admProdID
	cp.fail["DELETE "+path] = func(w http.ResponseWriter) {
		last := cp.last()
		switch last.pin {
		case admPIN:
			w.WriteHeader(http.StatusNoContent)
		case "":
			cp.json(w, http.StatusForbidden, wire.Error{Code: wire.CodePINRequired, Message: "to delete vault prod, generate a security PIN"})
		default:
			cp.json(w, http.StatusForbidden, wire.Error{Code: wire.CodePINInvalid, Message: "the PIN is wrong, expired or used"})
		}
	}
	if _, err := runAdmin("vault", "delete", "prod"); cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), "coffer admin pin prod") {
		t.Fatalf("no --pin: %v, want a usage error naming the PIN command", err)
	}
	out, err := runAdmin("vault", "delete", "prod", "--pin", admPIN)
	if err != nil || !strings.Contains(out, "is deleted") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if got := cp.last(); got.method != "DELETE" || got.path != path || got.pin != admPIN {
		t.Fatalf("sent %+v", got)
	}
	if _, err := runAdmin("vault", "delete", "prod", "--pin", "00000000"); err == nil || !strings.Contains(err.Error(), "coffer admin pin prod") {
		t.Fatalf("a wrong PIN: %v", err)
	}

	cp.fail["DELETE "+path] = func(w http.ResponseWriter) {
		cp.json(w, http.StatusConflict, wire.Error{Code: wire.CodeConflict, Message: "vault prod still has 1 machine(s): web-01 (protected)"})
	}
	_, err = runAdmin("vault", "delete", "prod", "--pin", admPIN)
	var ae *apiError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "web-01 (protected)") {
		t.Fatalf("a vault with a machine: %v", err)
	}
}

func TestAdminRestoreGrant(t *testing.T) {
	cp := newFakeCP(t)
	path := "/api/v1/vaults/" + admProdID + "/machines/" + admWebID + "/restore-grant"
	cp.fail["POST "+path] = func(w http.ResponseWriter) {
		cp.json(w, http.StatusOK, wire.Machine{ID: admWebID, VaultID: admProdID, Name: "web-01", State: wire.MachineProtected})
	}
	if _, err := runAdmin("restore-grant", "prod", "web-01"); cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), "--from") {
		t.Fatalf("no --from: %v", err)
	}
	out, err := runAdmin("restore-grant", "prod", "web-01", "--from", "db-01")
	if err != nil {
		t.Fatal(err)
	}
	if got := cp.last(); got.path != path || strings.TrimSpace(got.body) != `{"source":"`+admDBID+`"}` {
		t.Fatalf("sent %+v", got)
	}
	if !strings.Contains(out, "web-01 may restore db-01's data") || !strings.Contains(out, "coffer restore latest --from-machine db-01 --target DIR") {
		t.Fatalf("output:\n%s", out)
	}
	if _, err := runAdmin("restore-grant", "prod", "web-01", "--from", "nobody"); cli.ExitCode(err) != cli.ExitUsage {
		t.Fatalf("an unknown source: %v", err)
	}
}
