package keyvault

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzAuthorization feeds arbitrary Authorization headers, methods and paths
// to a vault with RBAC on, where one token may reach one secret. Only that
// token may ever get a 2xx, and only for that secret; every other answer is
// a Key Vault error, never a panic or a 5xx.
func FuzzAuthorization(f *testing.F) {
	const token = "token-of-machine-a"
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	newFuzzVault := func(t *testing.T) *vault {
		v, err := newVault(Options{Now: func() time.Time { return now }, PurgeProtection: true, Access: &Access{
			Principals:  map[string]string{token: "aaaaaaaa-0000-4000-8000-00000000000a"},
			Assignments: []RoleAssignment{{PrincipalID: "aaaaaaaa-0000-4000-8000-00000000000a", RoleID: RoleMachinePassphrase, Scope: "/secrets/mine"}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, seed := range []struct{ auth, method, target string }{
		{"Bearer " + token, "PUT", "/secrets/mine?api-version=7.4"},
		{"Bearer " + token, "GET", "/secrets/mine/?api-version=7.4"},
		{"Bearer " + token, "GET", "/secrets/other/?api-version=7.4"},
		{"Bearer " + token, "DELETE", "/secrets/mine?api-version=7.4"},
		{"Bearer " + token, "DELETE", "/deletedsecrets/mine?api-version=7.4"},
		{"Bearer " + token, "GET", "/secrets?api-version=7.4"},
		{"Bearer " + token + "x", "GET", "/secrets/mine/?api-version=7.4"},
		{"bearer " + token, "GET", "/secrets/MINE/versions?api-version=7.4"},
		{"Bearer  " + token, "GET", "/secrets/mine/?api-version=7.4"},
		{"", "GET", "/secrets/mine/?api-version=7.4"},
	} {
		f.Add(seed.auth, seed.method, seed.target)
	}
	f.Fuzz(func(t *testing.T, auth, method, target string) {
		v := newFuzzVault(t)
		body := []byte(`{"value":"v"}`)
		req, err := http.NewRequest(method, "https://127.0.0.1:8443/"+strings.TrimPrefix(target, "/"), bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		v.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s answered %d: %s", method, target, rec.Code, rec.Body)
		}
		if rec.Code < 300 {
			scheme, tok, _ := strings.Cut(auth, " ")
			if !strings.EqualFold(scheme, "Bearer") || tok != token {
				t.Fatalf("%s %s with Authorization %q answered %d", method, target, auth, rec.Code)
			}
			segs := strings.Split(strings.TrimPrefix(req.URL.EscapedPath(), "/"), "/")
			if len(segs) < 2 || !strings.EqualFold(segs[1], "mine") {
				t.Fatalf("the token reached %s %s, outside its secret (%d)", method, req.URL.EscapedPath(), rec.Code)
			}
		}
	})
}

// FuzzRoleAssignment feeds arbitrary ARM paths and bodies from the
// delegate: never a 5xx or a panic, and whatever it managed to create is
// within its condition (the machine role, never to itself).
func FuzzRoleAssignment(f *testing.F) {
	const (
		cpToken = "token-of-the-control-plane"
		cp      = "cccccccc-0000-4000-8000-00000000000c"
	)
	base := DefaultResourceID + "/secrets/coffer-passphrase-a/providers/Microsoft.Authorization/roleAssignments/11111111-0000-4000-8000-00000000000a?api-version=2022-04-01"
	for _, seed := range []struct{ method, target, body string }{
		{"PUT", base, `{"properties":{"roleDefinitionId":"/providers/Microsoft.Authorization/roleDefinitions/` + RoleMachinePassphrase + `","principalId":"aaaaaaaa-0000-4000-8000-00000000000a","principalType":"ServicePrincipal"}}`},
		{"PUT", base, `{"properties":{"roleDefinitionId":"/providers/Microsoft.Authorization/roleDefinitions/` + RoleSecretsOfficer + `","principalId":"` + cp + `","principalType":"ServicePrincipal"}}`},
		{"PUT", strings.ToUpper(base), `{"properties":{"roleDefinitionId":"/providers/Microsoft.Authorization/roleDefinitions/` + RoleMachinePassphrase + `","principalId":"` + cp + `","principalType":"servicePRINCIPAL"}}`},
		{"DELETE", base, ``},
		{"PUT", base, `{"properties":{"condition":"true"}}`},
		{"PUT", DefaultResourceID + "/providers/Microsoft.Authorization/roleAssignments/x", `{}`},
	} {
		f.Add(seed.method, seed.target, seed.body)
	}
	f.Fuzz(func(t *testing.T, method, target, body string) {
		v, err := newVault(Options{Access: &Access{
			Principals: map[string]string{cpToken: cp},
			Delegates:  []Delegate{{PrincipalID: cp, Roles: []string{RoleMachinePassphrase}, PrincipalTypes: []string{"ServicePrincipal"}, NotPrincipals: []string{cp}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(method, "https://127.0.0.1:8443/"+strings.TrimPrefix(target, "/"), strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+cpToken)
		rec := httptest.NewRecorder()
		v.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s answered %d: %s", method, target, rec.Code, rec.Body)
		}
		for _, ra := range v.authz.assignments {
			if ra.RoleID != RoleMachinePassphrase || strings.EqualFold(ra.PrincipalID, cp) {
				t.Fatalf("the delegate made %+v", ra)
			}
		}
	})
}
