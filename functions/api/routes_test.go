package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Every route says who may call it, exactly once, and the server serves
// exactly the table.
func TestEveryRouteDeclaresWhoMayCallIt(t *testing.T) {
	seen := map[string]bool{}
	var public []string
	for _, r := range routes {
		key := r.method + " " + r.path
		if seen[key] {
			t.Errorf("%s is in the table twice", key)
		}
		seen[key] = true
		kinds := 0
		for _, b := range []bool{r.who.public, r.who.agent, r.who.role != RoleNone, r.who.securityAdmin} {
			if b {
				kinds++
			}
		}
		if kinds != 1 {
			t.Errorf("%s: access %+v must be exactly one of public, agent-signed, an admin role or the Security Admin", key, r.who)
		}
		if (r.who.role != RoleNone || r.who.securityAdmin) && (r.who.role > RoleContributor || r.what == "") {
			t.Errorf("%s: role %s, description %q", key, r.who.role, r.what)
		}
		if r.who.agent != strings.HasPrefix(r.path, "/agent/") {
			t.Errorf("%s: agent routes, and only they, live under /agent/", key)
		}
		if r.who.public {
			public = append(public, key)
		}
		if r.handle == nil {
			t.Errorf("%s has no handler", key)
		}
	}
	slices.Sort(public)
	if want := []string{"GET /health", "POST /register"}; !slices.Equal(public, want) {
		t.Errorf("public routes %v, want only %v", public, want)
	}
	e := New(Deps{Auth: testTokens, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	served := 0
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		served++
		if !seen[r.Method+" "+strings.TrimPrefix(r.Path, wire.Version)] {
			t.Errorf("%s %s is served but not in the route table", r.Method, r.Path)
		}
	}
	if served != len(routes) {
		t.Errorf("%d routes served, %d in the table", served, len(routes))
	}
}

// Each admin route refuses every role below its own, before the handler
// runs, and refuses a caller without a token. The Security Admin reads as
// a Reader and does nothing else; its own routes refuse every rank,
// Contributor included.
func TestAdminRoutesRefuseLesserRoles(t *testing.T) {
	e := New(Deps{Auth: testTokens, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, r := range routes {
		if r.who.role == RoleNone && !r.who.securityAdmin {
			continue
		}
		for _, role := range []Role{RoleNone, RoleReader, RoleOperator, RoleContributor, RoleSecurityAdmin} {
			req := httptest.NewRequest(r.method, wire.Version+fill(r.path), strings.NewReader("{}"))
			if role != RoleNone {
				req.Header.Set("Authorization", "Bearer "+testTokens[role])
			}
			rec := httptest.NewRecorder()
			func() {
				// Allowed calls reach handlers whose stores are nil here;
				// only the refusals matter.
				defer func() { recover() }()
				e.ServeHTTP(rec, req)
			}()
			var allowed bool
			switch {
			case r.who.securityAdmin:
				allowed = role == RoleSecurityAdmin
			case role == RoleSecurityAdmin:
				allowed = r.who.role == RoleReader
			default:
				allowed = role >= r.who.role
			}
			refused := rec.Code == http.StatusForbidden && strings.Contains(rec.Body.String(), `"`+wire.CodeForbidden+`"`)
			switch {
			case role == RoleNone && rec.Code != http.StatusUnauthorized:
				t.Errorf("%s %s without a token: %d, want 401", r.method, r.path, rec.Code)
			case role != RoleNone && !allowed && !refused:
				t.Errorf("%s %s as %s: %d %s, want 403 forbidden", r.method, r.path, role, rec.Code, rec.Body)
			case role != RoleNone && allowed && refused:
				t.Errorf("%s %s as %s: refused, but the route allows %s", r.method, r.path, role, r.who)
			}
		}
	}
}

// What the docs promise a Reader and an Operator cannot do, route by route.
func TestReaderAndOperatorAreRefusedWhatTheyMustNotDo(t *testing.T) {
	h := newHarness(t)
	v, m, _ := h.vault(wire.MachineProtected)
	stopped, sm, _ := h.vault(wire.MachineStopped)
	deleted, dm, _ := h.vault(wire.MachineDeleted)
	base := wire.Version + "/vaults/" + v.ID
	type call struct {
		method, path string
		body         any
	}
	writes := []call{
		{"POST", wire.Version + "/vaults", wire.NewVault{Name: "x"}},
		{"PATCH", base, wire.VaultUpdate{}},
		{"POST", base + "/pin", nil},
		{"PUT", base + "/policies/default", map[string]any{}},
		{"PUT", base + "/machines/" + m.ID + "/policy", wire.AssignPolicy{Policy: "default"}},
		{"POST", base + "/machines/" + m.ID + "/stop", wire.StopProtection{DeleteData: true}},
		{"POST", wire.Version + "/vaults/" + deleted.ID + "/machines/" + dm.ID + "/undelete", nil},
		{"DELETE", base + "/machines/" + m.ID + "/points/" + strings.Repeat("a", 64), nil},
		{"POST", base + "/machines/" + m.ID + "/points/" + strings.Repeat("a", 64) + "/undelete", nil},
	}
	operatorMay := []call{
		{"POST", base + "/credentials", nil},
		{"POST", base + "/machines/" + m.ID + "/stop", wire.StopProtection{}},
		{"POST", wire.Version + "/vaults/" + stopped.ID + "/machines/" + sm.ID + "/resume", nil},
	}
	ctx := h.ctx()
	for _, role := range []Role{RoleReader, RoleOperator} {
		calls := writes
		if role == RoleReader {
			calls = append(slices.Clone(writes), operatorMay...)
		}
		for _, c := range calls {
			pin := h.pin(v)
			_, err := h.admins[role].Do(ctx, c.method, c.path, c.body, nil, http.Header{wire.PINHeader: {pin}})
			if got := status(err); got != "403 "+wire.CodeForbidden {
				t.Errorf("%s: %s %s: %s, want 403 forbidden", role, c.method, c.path, got)
			}
		}
	}
	if len(h.pins.used) != 0 {
		t.Fatalf("refused calls used PINs: %v", h.pins.used)
	}
	if _, ok := h.reg.machines[dm.ID]; !ok || h.reg.machines[dm.ID].State != wire.MachineDeleted || h.reg.machines[m.ID].State != wire.MachineProtected {
		t.Fatal("a refused call changed a machine")
	}
	for _, c := range operatorMay {
		_, err := h.admins[RoleOperator].Do(ctx, c.method, c.path, c.body, nil)
		if err != nil {
			t.Errorf("Operator: %s %s: %v", c.method, c.path, err)
		}
	}
}
