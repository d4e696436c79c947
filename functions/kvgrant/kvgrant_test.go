package kvgrant_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/functions/kvgrant"
)

const (
	controlPlane = "cccccccc-0000-4000-8000-00000000000c"
	machineA     = "aaaaaaaa-0000-4000-8000-00000000000a"
)

// setup is the deployed delegate against the Key Vault emulator: the
// control plane may assign the machine role, to service principals, never
// to itself.
func setup(t *testing.T) (*keyvault.Server, *kvgrant.Granter) {
	t.Helper()
	kv, err := keyvault.Start(keyvault.Options{PurgeProtection: true, Access: &keyvault.Access{Delegates: []keyvault.Delegate{{
		PrincipalID: controlPlane, Roles: []string{keyvault.RoleMachinePassphrase},
		PrincipalTypes: []string{"ServicePrincipal"}, NotPrincipals: []string{controlPlane},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	tok, err := kv.NewToken(controlPlane)
	if err != nil {
		t.Fatal(err)
	}
	g, err := kvgrant.New(kvgrant.Options{VaultResourceID: keyvault.DefaultResourceID, RoleID: keyvault.RoleMachinePassphrase,
		Endpoint: kv.URL(), Credential: keyvault.TokenCredential(tok), Transport: kv.ClientOptions().Transport})
	if err != nil {
		t.Fatal(err)
	}
	return kv, g
}

func machineClient(t *testing.T, kv *keyvault.Server, oid string) *azsecrets.Client {
	t.Helper()
	tok, err := kv.NewToken(oid)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azsecrets.NewClient(kv.URL(), keyvault.TokenCredential(tok), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGrantLetsTheMachineEscrowInItsOwnSecretOnly(t *testing.T) {
	kv, g := setup(t)
	a := machineClient(t, kv, machineA)
	ctx := t.Context()
	if err := g.Grant(ctx, "coffer-passphrase-m1", machineA); err != nil {
		t.Fatal(err)
	}
	v := "a passphrase of sixteen or more"
	if _, err := a.SetSecret(ctx, "coffer-passphrase-m1", azsecrets.SetSecretParameters{Value: &v}, nil); err != nil {
		t.Fatalf("the machine escrows after the grant: %v", err)
	}
	_, err := a.SetSecret(ctx, "coffer-passphrase-m2", azsecrets.SetSecretParameters{Value: &v}, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("the machine wrote another secret: %v", err)
	}
	// A retried registration grants again without error.
	if err := g.Grant(ctx, "coffer-passphrase-m1", strings.ToUpper(machineA)); err != nil {
		t.Fatalf("the same grant again: %v", err)
	}
	// So does one an admin already made by hand, under another name.
	if err := kv.Assign(keyvault.RoleAssignment{PrincipalID: machineA, RoleID: keyvault.RoleMachinePassphrase, Scope: "/secrets/coffer-passphrase-m3"}); err != nil {
		t.Fatal(err)
	}
	if err := g.Grant(ctx, "coffer-passphrase-m3", machineA); err != nil {
		t.Fatalf("a grant an admin made first: %v", err)
	}
}

// The delegate's condition stops the control plane from granting itself.
func TestGrantToTheControlPlaneItselfIsRefused(t *testing.T) {
	_, g := setup(t)
	err := g.Grant(t.Context(), "coffer-passphrase-m1", controlPlane)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "AuthorizationFailed" {
		t.Fatalf("grant to itself: %v", err)
	}
	if !strings.Contains(err.Error(), "Role Based Access Control Administrator") {
		t.Errorf("the error does not say which role the control plane needs: %v", err)
	}
}

func TestOptionsAndArgumentsAreChecked(t *testing.T) {
	cred := keyvault.TokenCredential("t")
	for _, tc := range []struct {
		name string
		o    kvgrant.Options
		want string
	}{
		{"not a vault ID", kvgrant.Options{VaultResourceID: "/subscriptions/x/vaults/y", RoleID: keyvault.RoleMachinePassphrase, Credential: cred}, "not a Key Vault resource ID"},
		{"role not a GUID", kvgrant.Options{VaultResourceID: keyvault.DefaultResourceID, RoleID: "Coffer Machine Passphrase", Credential: cred}, "not a GUID"},
		{"no credential", kvgrant.Options{VaultResourceID: keyvault.DefaultResourceID, RoleID: keyvault.RoleMachinePassphrase}, "no credential"},
		{"plain HTTP", kvgrant.Options{VaultResourceID: keyvault.DefaultResourceID, RoleID: keyvault.RoleMachinePassphrase, Credential: cred, Endpoint: "http://127.0.0.1:1"}, "https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := kvgrant.New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	_, g := setup(t)
	for _, tc := range []struct{ secret, principal string }{{"a/b", machineA}, {"coffer-passphrase-m1", "not-a-guid"}, {"", machineA}} {
		if err := g.Grant(t.Context(), tc.secret, tc.principal); err == nil {
			t.Errorf("Grant(%q, %q) was accepted", tc.secret, tc.principal)
		}
	}
}

// Revoke takes back exactly what Grant gave: the machine can no longer
// read or write its secret, another machine's role stays, and revoking
// again (or what was never granted) succeeds.
func TestRevokeTakesTheMachineItsRoleBack(t *testing.T) {
	kv, g := setup(t)
	const machineB = "bbbbbbbb-0000-4000-8000-00000000000b"
	a, b := machineClient(t, kv, machineA), machineClient(t, kv, machineB)
	ctx := t.Context()
	v := "a passphrase of sixteen or more"
	for _, grant := range []struct{ secret, principal string }{{"coffer-passphrase-m1", machineA}, {"coffer-passphrase-m2", machineB}} {
		if err := g.Grant(ctx, grant.secret, grant.principal); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.SetSecret(ctx, "coffer-passphrase-m1", azsecrets.SetSecretParameters{Value: &v}, nil); err != nil {
		t.Fatal(err)
	}
	if err := g.Revoke(ctx, "coffer-passphrase-m1", strings.ToUpper(machineA)); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	var re *azcore.ResponseError
	if _, err := a.GetSecret(ctx, "coffer-passphrase-m1", "", nil); !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("the purged machine still reads its secret: %v", err)
	}
	if _, err := b.SetSecret(ctx, "coffer-passphrase-m2", azsecrets.SetSecretParameters{Value: &v}, nil); err != nil {
		t.Fatalf("another machine lost its role: %v", err)
	}
	if err := g.Revoke(ctx, "coffer-passphrase-m1", machineA); err != nil {
		t.Fatalf("revoking again: %v", err)
	}
	if err := g.Revoke(ctx, "coffer-passphrase-m9", machineA); err != nil {
		t.Fatalf("revoking what was never granted: %v", err)
	}
	for _, bad := range [][2]string{{"no/such secret", machineA}, {"coffer-passphrase-m1", "not-a-guid"}} {
		if err := g.Revoke(ctx, bad[0], bad[1]); err == nil {
			t.Errorf("Revoke(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
