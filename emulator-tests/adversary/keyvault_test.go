package adversary

import (
	"errors"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

// Attack 10: any machine reads other machines' passphrases. On the old
// deployment every machine was Key Vault Secrets Officer on the whole
// vault. Each machine's principal holds Coffer's machine role on its own
// secret only: it escrows and reads its own passphrase, and cannot read,
// add a version to, delete or list another machine's.
func TestMachineCannotReachAnotherMachinesPassphrase(t *testing.T) {
	ctx := t.Context()
	a, b := fx.victim, fx.other
	kv, err := azsecrets.NewClient(fx.kv.URL(), keyvault.TokenCredential(a.kvToken), fx.kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	own, err := kv.GetSecret(ctx, a.secret, "", nil)
	if err != nil || own.Value == nil || len(*own.Value) < 16 {
		t.Fatalf("%s reads its own passphrase: %v", a.name, err)
	}
	forbidden := func(what string, err error) {
		t.Helper()
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s: %v; want 403", a.name, what, err)
		}
	}
	_, err = kv.GetSecret(ctx, b.secret, "", nil)
	forbidden("reads "+b.name+"'s passphrase", err)
	junk := "a passphrase the attacker chose, long enough"
	_, err = kv.SetSecret(ctx, b.secret, azsecrets.SetSecretParameters{Value: &junk}, nil)
	forbidden("adds a version to "+b.name+"'s passphrase", err)
	_, err = kv.DeleteSecret(ctx, b.secret, nil)
	forbidden("deletes "+b.name+"'s passphrase", err)
	_, err = kv.DeleteSecret(ctx, a.secret, nil)
	forbidden("deletes its own passphrase", err)
	pager := kv.NewListSecretPropertiesPager(nil)
	_, err = pager.NextPage(ctx)
	forbidden("lists the vault's secrets", err)

	// B's passphrase is what B escrowed, untouched: its points restore at
	// the end with it.
	kvB, err := azsecrets.NewClient(fx.kv.URL(), keyvault.TokenCredential(b.kvToken), fx.kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	versions := kvB.NewListSecretPropertiesVersionsPager(b.secret, nil)
	n := 0
	for versions.More() {
		page, err := versions.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Errorf("%s's passphrase has %d versions, want the 1 it escrowed", b.name, n)
	}
}
