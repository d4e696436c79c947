package keyvault_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

// Object IDs of the principals in these tests: two machines, the control
// plane's managed identity and an admin.
const (
	machineA     = "aaaaaaaa-0000-4000-8000-00000000000a"
	machineB     = "bbbbbbbb-0000-4000-8000-00000000000b"
	controlPlane = "cccccccc-0000-4000-8000-00000000000c"
	admin        = "dddddddd-0000-4000-8000-00000000000d"
)

// rbacVault is the deployed design in miniature: each machine holds Coffer's
// machine-passphrase role on its own secret only, the control plane holds
// nothing, an admin holds Secrets Officer on the vault, and purge
// protection is on. It returns a client per principal.
func rbacVault(t *testing.T) (s *keyvault.Server, a, b, cp, adm *azsecrets.Client) {
	t.Helper()
	s = startServer(t, keyvault.Options{Access: &keyvault.Access{}, PurgeProtection: true, Now: newClock().Now})
	for _, ra := range []keyvault.RoleAssignment{
		{PrincipalID: machineA, RoleID: keyvault.RoleMachinePassphrase, Scope: "/secrets/coffer-passphrase-a"},
		{PrincipalID: machineB, RoleID: keyvault.RoleMachinePassphrase, Scope: "/secrets/coffer-passphrase-b"},
		{PrincipalID: admin, RoleID: keyvault.RoleSecretsOfficer, Scope: "/"},
	} {
		if err := s.Assign(ra); err != nil {
			t.Fatal(err)
		}
	}
	return s, clientAs(t, s, machineA), clientAs(t, s, machineB), clientAs(t, s, controlPlane), clientAs(t, s, admin)
}

func clientAs(t *testing.T, s *keyvault.Server, objectID string) *azsecrets.Client {
	t.Helper()
	tok, err := s.NewToken(objectID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azsecrets.NewClient(s.URL(), keyvault.TokenCredential(tok), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantForbiddenByRBAC asserts a 403 whose inner code is ForbiddenByRbac and
// whose message names the data action that was missing.
func wantForbiddenByRBAC(t *testing.T, err error, action string) {
	t.Helper()
	wantResponseError(t, err, http.StatusForbidden, "Forbidden")
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *azcore.ResponseError", err)
	}
	body := re.Error()
	if !strings.Contains(body, "ForbiddenByRbac") || !strings.Contains(body, action) {
		t.Fatalf("403 does not say ForbiddenByRbac and %s:\n%s", action, body)
	}
}

func TestMachineReachesOnlyItsOwnPassphrase(t *testing.T) {
	_, a, b, _, _ := rbacVault(t)
	ctx := t.Context()

	// Each machine escrows its passphrase, adds a version and reads both back.
	v1 := set(t, a, "coffer-passphrase-a", "a-first")
	set(t, a, "coffer-passphrase-a", "a-second")
	set(t, b, "coffer-passphrase-b", "b-secret")
	if got, err := a.GetSecret(ctx, "coffer-passphrase-a", "", nil); err != nil || *got.Value != "a-second" {
		t.Fatalf("A reads its latest: %v", err)
	}
	if got, err := a.GetSecret(ctx, "COFFER-PASSPHRASE-A", v1.ID.Version(), nil); err != nil || *got.Value != "a-first" {
		t.Fatalf("A reads its first version (names are case-insensitive): %v", err)
	}
	if n := countVersions(t, a, "coffer-passphrase-a"); n != 2 {
		t.Fatalf("A sees %d versions of its secret, want 2", n)
	}

	// Nothing of B's is within A's reach.
	for _, tc := range []struct {
		name   string
		call   func() error
		action string
	}{
		{"read B's", func() error { _, err := a.GetSecret(ctx, "coffer-passphrase-b", "", nil); return err }, keyvault.ActionGetSecret},
		{"add a version to B's", func() error {
			_, err := a.SetSecret(ctx, "coffer-passphrase-b", azsecrets.SetSecretParameters{Value: ptr("attacker")}, nil)
			return err
		}, keyvault.ActionSetSecret},
		{"delete B's", func() error { _, err := a.DeleteSecret(ctx, "coffer-passphrase-b", nil); return err }, keyvault.ActionDelete},
		{"list B's versions", func() error {
			_, err := a.NewListSecretPropertiesVersionsPager("coffer-passphrase-b", nil).NextPage(ctx)
			return err
		}, keyvault.ActionReadMetadata},
		{"disable B's", func() error {
			_, err := a.UpdateSecretProperties(ctx, "coffer-passphrase-b", "", azsecrets.UpdateSecretPropertiesParameters{
				SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false)}}, nil)
			return err
		}, keyvault.ActionUpdate},
		{"back up B's", func() error { _, err := a.BackupSecret(ctx, "coffer-passphrase-b", nil); return err }, keyvault.ActionBackup},
		{"list the vault's secrets", func() error {
			_, err := a.NewListSecretPropertiesPager(nil).NextPage(ctx)
			return err
		}, keyvault.ActionReadMetadata},
		{"create another secret", func() error {
			_, err := a.SetSecret(ctx, "coffer-passphrase-c", azsecrets.SetSecretParameters{Value: ptr("squat")}, nil)
			return err
		}, keyvault.ActionSetSecret},
		// Its own secret is escrow, not something it may destroy.
		{"delete its own", func() error { _, err := a.DeleteSecret(ctx, "coffer-passphrase-a", nil); return err }, keyvault.ActionDelete},
		{"disable its own", func() error {
			_, err := a.UpdateSecretProperties(ctx, "coffer-passphrase-a", "", azsecrets.UpdateSecretPropertiesParameters{
				SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false)}}, nil)
			return err
		}, keyvault.ActionUpdate},
	} {
		t.Run(tc.name, func(t *testing.T) { wantForbiddenByRBAC(t, tc.call(), tc.action) })
	}

	// B's secret is as B left it: one version, its value.
	if got, err := b.GetSecret(ctx, "coffer-passphrase-b", "", nil); err != nil || *got.Value != "b-secret" {
		t.Fatalf("B's passphrase after A's attempts: %v", err)
	}
	if n := countVersions(t, b, "coffer-passphrase-b"); n != 1 {
		t.Fatalf("B's secret has %d versions, want 1", n)
	}
}

func TestControlPlaneReachesNoPassphrase(t *testing.T) {
	_, a, _, cp, _ := rbacVault(t)
	ctx := t.Context()
	set(t, a, "coffer-passphrase-a", "a-secret")

	_, err := cp.GetSecret(ctx, "coffer-passphrase-a", "", nil)
	wantForbiddenByRBAC(t, err, keyvault.ActionGetSecret)
	_, err = cp.SetSecret(ctx, "coffer-passphrase-a", azsecrets.SetSecretParameters{Value: ptr("x")}, nil)
	wantForbiddenByRBAC(t, err, keyvault.ActionSetSecret)
	_, err = cp.DeleteSecret(ctx, "coffer-passphrase-a", nil)
	wantForbiddenByRBAC(t, err, keyvault.ActionDelete)
	_, err = cp.NewListSecretPropertiesPager(nil).NextPage(ctx)
	wantForbiddenByRBAC(t, err, keyvault.ActionReadMetadata)
}

func TestPurgeProtectionKeepsDeletedSecretsRecoverable(t *testing.T) {
	_, a, _, _, adm := rbacVault(t)
	ctx := t.Context()
	set(t, a, "coffer-passphrase-a", "a-secret")

	// Even Secrets Officer, whose role includes purge, cannot purge.
	del, err := adm.DeleteSecret(ctx, "coffer-passphrase-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lvl := string(*del.Attributes.RecoveryLevel); lvl != "Recoverable" {
		t.Fatalf("recovery level %q, want Recoverable (no +Purgeable under purge protection)", lvl)
	}
	_, err = adm.PurgeDeletedSecret(ctx, "coffer-passphrase-a", nil)
	wantResponseError(t, err, http.StatusForbidden, "Forbidden")
	if !strings.Contains(err.Error(), "purge protection is enabled") {
		t.Fatalf("purge refused without naming purge protection: %v", err)
	}
	// A machine lacks the purge action in the first place.
	_, err = a.PurgeDeletedSecret(ctx, "coffer-passphrase-a", nil)
	wantForbiddenByRBAC(t, err, keyvault.ActionPurge)

	// The secret is still there to recover, with its value.
	if _, err := adm.RecoverDeletedSecret(ctx, "coffer-passphrase-a", nil); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if got, err := a.GetSecret(ctx, "coffer-passphrase-a", "", nil); err != nil || *got.Value != "a-secret" {
		t.Fatalf("A reads its recovered secret: %v", err)
	}
}

func TestCustomizedRetentionUnderPurgeProtection(t *testing.T) {
	s := startServer(t, keyvault.Options{PurgeProtection: true, RecoverableDays: 7})
	c := newClient(t, s)
	r := set(t, c, "short", "v")
	if lvl := string(*r.Attributes.RecoveryLevel); lvl != "CustomizedRecoverable" {
		t.Fatalf("recovery level %q, want CustomizedRecoverable", lvl)
	}
}

func TestAssignmentsTakeEffectWhileRunning(t *testing.T) {
	s := startServer(t, keyvault.Options{Access: &keyvault.Access{}})
	a := clientAs(t, s, machineA)
	ctx := t.Context()
	write := func() error {
		_, err := a.SetSecret(ctx, "coffer-passphrase-a", azsecrets.SetSecretParameters{Value: ptr("v")}, nil)
		return err
	}
	wantForbiddenByRBAC(t, write(), keyvault.ActionSetSecret)

	ra := keyvault.RoleAssignment{PrincipalID: machineA, RoleID: keyvault.RoleMachinePassphrase, Scope: "/secrets/Coffer-Passphrase-A"}
	if err := s.Assign(ra); err != nil {
		t.Fatal(err)
	}
	if err := write(); err != nil {
		t.Fatalf("after the assignment: %v", err)
	}
	if !s.Unassign(ra) {
		t.Fatal("Unassign found no assignment")
	}
	_, err := a.GetSecret(ctx, "coffer-passphrase-a", "", nil)
	wantForbiddenByRBAC(t, err, keyvault.ActionGetSecret)
}

func TestConfiguredTokensAndAssignments(t *testing.T) {
	access, err := keyvault.ParseAccess([]byte(`{
		"principals": {"token-of-a": "` + machineA + `", "token-of-reader": "` + admin + `"},
		"roles": [{"id": "eeeeeeee-0000-4000-8000-00000000000e", "name": "Lister", "dataActions": ["Microsoft.KeyVault/vaults/secrets/*"],
		           "notDataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"]}],
		"assignments": [
			{"principalId": "` + machineA + `", "roleDefinitionId": "` + keyvault.RoleMachinePassphrase + `", "scope": "/secrets/mine"},
			{"principalId": "` + admin + `", "roleDefinitionId": "eeeeeeee-0000-4000-8000-00000000000e", "scope": "/"}
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, keyvault.Options{Access: access})
	a, err := azsecrets.NewClient(s.URL(), keyvault.TokenCredential("token-of-a"), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	lister, err := azsecrets.NewClient(s.URL(), keyvault.TokenCredential("token-of-reader"), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	set(t, a, "mine", "v")
	if _, err := lister.NewListSecretPropertiesPager(nil).NextPage(t.Context()); err != nil {
		t.Fatalf("a role with secrets/* lists: %v", err)
	}
	// NotDataActions take away what the wildcard gave.
	_, err = lister.GetSecret(t.Context(), "mine", "", nil)
	wantForbiddenByRBAC(t, err, keyvault.ActionGetSecret)
}

func TestUnknownTokenIsRefusedWithAChallenge(t *testing.T) {
	s := startServer(t, keyvault.Options{Access: &keyvault.Access{}})
	tok, err := s.NewToken(machineA)
	if err != nil {
		t.Fatal(err)
	}
	hc := rawClient(t, s)
	// The emulator trusts its exact tokens, not their claims: the same
	// claims with another signature part are refused.
	parts := strings.Split(tok, ".")
	forged := parts[0] + "." + parts[1] + ".Zm9yZ2Vk"
	static, err := keyvault.Credential().GetToken(t.Context(), policy.TokenRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range []string{"Bearer " + forged, "Bearer " + static.Token, "Bearer anything"} {
		r := do(t, hc, s, http.MethodGet, "/secrets?api-version=7.4", auth, nil)
		wantErrorDoc(t, r, http.StatusUnauthorized, "Unauthorized")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Fatal("401 without a challenge")
		}
	}
	// The claims name the principal, so a process can learn its object ID
	// from its token as it would from Entra ID's.
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Oid, Aud string }
	if err := json.Unmarshal(claims, &c); err != nil || c.Oid != machineA || c.Aud != "https://vault.azure.net" {
		t.Fatalf("claims %s: %v", claims, err)
	}
}

func TestAccessConfigurationIsChecked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		access keyvault.Access
		want   string
	}{
		{"principal not a GUID", keyvault.Access{Principals: map[string]string{"t": "machine-a"}}, "not a GUID"},
		{"token not token68", keyvault.Access{Principals: map[string]string{"two words": machineA}}, "not a valid bearer token"},
		{"unknown role", keyvault.Access{Assignments: []keyvault.RoleAssignment{{PrincipalID: machineA, RoleID: admin, Scope: "/"}}}, "unknown role"},
		{"scope outside secrets", keyvault.Access{Assignments: []keyvault.RoleAssignment{{PrincipalID: machineA, RoleID: keyvault.RoleSecretsUser, Scope: "/keys/k"}}}, "scope"},
		{"scope with a bad name", keyvault.Access{Assignments: []keyvault.RoleAssignment{{PrincipalID: machineA, RoleID: keyvault.RoleSecretsUser, Scope: "/secrets/a_b"}}}, "scope"},
		{"role ID not a GUID", keyvault.Access{Roles: []keyvault.RoleDefinition{{ID: "mine", Name: "x"}}}, "not a GUID"},
		{"delegate not a GUID", keyvault.Access{Delegates: []keyvault.Delegate{{PrincipalID: "cp", Roles: []string{keyvault.RoleSecretsUser}, PrincipalTypes: []string{"User"}}}}, "not a GUID"},
		{"delegate without a condition", keyvault.Access{Delegates: []keyvault.Delegate{{PrincipalID: controlPlane}}}, "roles and principal types"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := keyvault.Start(keyvault.Options{Access: &tc.access})
			if err == nil {
				s.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if s, err := keyvault.Start(keyvault.Options{ResourceID: "/vaults/x"}); err == nil {
		s.Close()
		t.Fatal("started with a resource ID that is not a vault's")
	}
	if _, err := keyvault.ParseAccess([]byte(`{"principal": {}}`)); err == nil {
		t.Fatal("ParseAccess accepted an unknown field")
	}
	// Without Access there is nothing to issue tokens or assign roles in.
	s := startServer(t, keyvault.Options{})
	if _, err := s.NewToken(machineA); err == nil {
		t.Fatal("NewToken without Access")
	}
	if err := s.Assign(keyvault.RoleAssignment{PrincipalID: machineA, RoleID: keyvault.RoleSecretsUser, Scope: "/"}); err == nil {
		t.Fatal("Assign without Access")
	}
}
