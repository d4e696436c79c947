package keyvault_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

// delegateVault is the deployed delegate in miniature: the control plane
// may assign only the machine passphrase role, only to service principals,
// never to itself; an admin holds Secrets Officer on the vault from the
// start (made outside the delegate, as by the template or by hand).
func delegateVault(t *testing.T) (s *keyvault.Server, cpToken string) {
	t.Helper()
	s = startServer(t, keyvault.Options{PurgeProtection: true, Access: &keyvault.Access{
		Assignments: []keyvault.RoleAssignment{{PrincipalID: admin, RoleID: keyvault.RoleSecretsOfficer, Scope: "/"}},
		Delegates: []keyvault.Delegate{{
			PrincipalID:    controlPlane,
			Roles:          []string{keyvault.RoleMachinePassphrase},
			PrincipalTypes: []string{"ServicePrincipal"},
			NotPrincipals:  []string{controlPlane},
		}, {
			// An admin who may also hand out read access (Secrets User).
			PrincipalID:    admin,
			Roles:          []string{keyvault.RoleMachinePassphrase, keyvault.RoleSecretsUser},
			PrincipalTypes: []string{"ServicePrincipal", "User"},
		}},
	}})
	tok, err := s.NewToken(controlPlane)
	if err != nil {
		t.Fatal(err)
	}
	return s, tok
}

// assignmentPath is the ARM path of a role assignment at a secret of the
// emulated vault ("" for the vault itself).
func assignmentPath(secret, name string) string {
	scope := keyvault.DefaultResourceID
	if secret != "" {
		scope += "/secrets/" + secret
	}
	return scope + "/providers/Microsoft.Authorization/roleAssignments/" + name + "?api-version=2022-04-01"
}

func assignmentBody(role, principal, principalType string) *strings.Reader {
	b, _ := json.Marshal(map[string]any{"properties": map[string]string{
		"roleDefinitionId": "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/" + role,
		"principalId":      principal,
		"principalType":    principalType,
	}})
	return strings.NewReader(string(b))
}

const (
	grantA = "11111111-0000-4000-8000-00000000000a"
	grantX = "11111111-0000-4000-8000-0000000000ff"
)

// Registration through the delegate: the control plane assigns machine A
// its role on A's secret, A can then escrow and read, and removing the
// assignment takes the access away again.
func TestDelegateGrantsAMachineItsOwnSecret(t *testing.T) {
	s, cp := delegateVault(t)
	hc := rawClient(t, s)
	a := clientAs(t, s, machineA)
	_, err := a.SetSecret(t.Context(), "coffer-passphrase-a", azsecrets.SetSecretParameters{Value: ptr("v")}, nil)
	wantForbiddenByRBAC(t, err, keyvault.ActionSetSecret)

	r := do(t, hc, s, http.MethodPut, assignmentPath("coffer-passphrase-a", grantA), "Bearer "+cp,
		assignmentBody(keyvault.RoleMachinePassphrase, machineA, "ServicePrincipal"))
	if r.status != http.StatusCreated {
		t.Fatalf("grant: %d %s", r.status, r.body)
	}
	var got struct {
		ID, Name   string
		Properties struct{ PrincipalID, Scope string }
	}
	if err := json.Unmarshal(r.body, &got); err != nil || got.Name != grantA || got.Properties.PrincipalID != machineA ||
		!strings.HasSuffix(got.Properties.Scope, "/secrets/coffer-passphrase-a") {
		t.Fatalf("assignment %s: %v", r.body, err)
	}
	set(t, a, "coffer-passphrase-a", "a-secret")
	// The same PUT again is idempotent; the same grant under another name is a conflict.
	if r := do(t, hc, s, http.MethodPut, assignmentPath("coffer-passphrase-a", grantA), "Bearer "+cp,
		assignmentBody(keyvault.RoleMachinePassphrase, machineA, "ServicePrincipal")); r.status != http.StatusCreated {
		t.Fatalf("repeat grant: %d %s", r.status, r.body)
	}
	wantErrorDoc(t, do(t, hc, s, http.MethodPut, assignmentPath("coffer-passphrase-a", grantX), "Bearer "+cp,
		assignmentBody(keyvault.RoleMachinePassphrase, machineA, "ServicePrincipal")), http.StatusConflict, "RoleAssignmentExists")

	if r := do(t, hc, s, http.MethodDelete, assignmentPath("coffer-passphrase-a", grantA), "Bearer "+cp, nil); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	_, err = a.GetSecret(t.Context(), "coffer-passphrase-a", "", nil)
	wantForbiddenByRBAC(t, err, keyvault.ActionGetSecret)
	if r := do(t, hc, s, http.MethodDelete, assignmentPath("coffer-passphrase-a", grantA), "Bearer "+cp, nil); r.status != http.StatusNoContent {
		t.Fatalf("revoke again: %d %s, want 204", r.status, r.body)
	}
}

// The delegate's condition holds: the control plane can give nobody,
// itself least of all, anything but a machine's role, and a machine cannot
// make grants at all.
func TestDelegateCannotGrantBeyondItsCondition(t *testing.T) {
	s, cp := delegateVault(t)
	hc := rawClient(t, s)
	aTok, err := s.NewToken(machineA)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, auth, path string
		body             *strings.Reader
	}{
		{"the machine role to itself", cp, assignmentPath("coffer-passphrase-a", grantX),
			assignmentBody(keyvault.RoleMachinePassphrase, controlPlane, "ServicePrincipal")},
		{"Secrets User to itself", cp, assignmentPath("coffer-passphrase-a", grantX),
			assignmentBody(keyvault.RoleSecretsUser, controlPlane, "ServicePrincipal")},
		{"Secrets Officer on the vault to a machine", cp, assignmentPath("", grantX),
			assignmentBody(keyvault.RoleSecretsOfficer, machineA, "ServicePrincipal")},
		{"the machine role to a user", cp, assignmentPath("coffer-passphrase-a", grantX),
			assignmentBody(keyvault.RoleMachinePassphrase, machineA, "User")},
		{"the machine role to a group", cp, assignmentPath("coffer-passphrase-a", grantX),
			assignmentBody(keyvault.RoleMachinePassphrase, machineA, "Group")},
		{"outside this vault", cp, "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/other/providers/Microsoft.KeyVault/vaults/other/secrets/s/providers/Microsoft.Authorization/roleAssignments/" + grantX + "?api-version=2022-04-01",
			assignmentBody(keyvault.RoleMachinePassphrase, machineA, "ServicePrincipal")},
		{"a machine granting itself B's secret", aTok, assignmentPath("coffer-passphrase-b", grantX),
			assignmentBody(keyvault.RoleMachinePassphrase, machineA, "ServicePrincipal")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErrorDoc(t, do(t, hc, s, http.MethodPut, tc.path, "Bearer "+tc.auth, tc.body), http.StatusForbidden, "AuthorizationFailed")
		})
	}
	// Nor can it remove an assignment of another role: an admin lets A read
	// B's passphrase for a restore, and neither the control plane nor A can
	// delete that grant.
	adminTok, err := s.NewToken(admin)
	if err != nil {
		t.Fatal(err)
	}
	const readGrant = "22222222-0000-4000-8000-00000000000b"
	if r := do(t, hc, s, http.MethodPut, assignmentPath("coffer-passphrase-b", readGrant), "Bearer "+adminTok,
		assignmentBody(keyvault.RoleSecretsUser, machineA, "ServicePrincipal")); r.status != http.StatusCreated {
		t.Fatalf("admin's grant: %d %s", r.status, r.body)
	}
	for _, tok := range []string{cp, aTok} {
		wantErrorDoc(t, do(t, hc, s, http.MethodDelete, assignmentPath("coffer-passphrase-b", readGrant), "Bearer "+tok, nil), http.StatusForbidden, "AuthorizationFailed")
	}

	// Malformed requests are the caller's fault.
	wantErrorDoc(t, do(t, hc, s, http.MethodPut, assignmentPath("coffer-passphrase-a", "not-a-guid"), "Bearer "+cp,
		assignmentBody(keyvault.RoleMachinePassphrase, machineA, "ServicePrincipal")), http.StatusBadRequest, "InvalidRoleAssignmentId")
	wantErrorDoc(t, do(t, hc, s, http.MethodPut, assignmentPath("coffer-passphrase-a", grantX), "Bearer "+cp,
		strings.NewReader(`{"properties":{"roleDefinitionId":"x","principalId":"y"}}`)), http.StatusBadRequest, "InvalidRoleDefinitionId")
	wantErrorDoc(t, do(t, hc, s, http.MethodPut, assignmentPath("coffer-passphrase-a", grantX), "Bearer "+cp,
		strings.NewReader(`{"properties":{},"extra":1}`)), http.StatusBadRequest, "InvalidRequestContent")
}

// Without RBAC there are no role assignments to make.
func TestRoleAssignmentsNeedRBAC(t *testing.T) {
	s := startServer(t, keyvault.Options{})
	r := do(t, rawClient(t, s), s, http.MethodPut, assignmentPath("x", grantX), "Bearer t",
		assignmentBody(keyvault.RoleMachinePassphrase, machineA, "ServicePrincipal"))
	wantErrorDoc(t, r, http.StatusNotFound, "NotFound")
}
