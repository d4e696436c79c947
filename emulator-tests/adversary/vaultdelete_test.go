package adversary

import (
	"net/http"
	"testing"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Attack 14: deleting a whole vault (issue 12's route). The machine's own
// key, a Reader and an Operator are refused; a Contributor without a PIN
// is refused; with a PIN a vault that still has a machine is refused, and
// its PIN is not used up. The vault and its machine stay.
func TestVaultWithMachinesCannotBeDeleted(t *testing.T) {
	ctx := t.Context()
	v, err := fx.newVault(ctx, "delete-probe")
	if err != nil {
		t.Fatal(err)
	}
	m, err := fx.register(ctx, v, "delete-probe-01")
	if err != nil {
		t.Fatal(err)
	}
	path := wire.Version + "/vaults/" + v.ID
	tries := []struct {
		who  string
		do   func() error
		want int
	}{
		{"the machine's own key", func() error { _, err := m.agent(fx.cp).Do(ctx, "DELETE", path, nil, nil); return err }, http.StatusUnauthorized},
		{"a Reader", func() error { _, err := fx.reader.Do(ctx, "DELETE", path, nil, nil); return err }, http.StatusForbidden},
		{"an Operator", func() error { _, err := fx.operator.Do(ctx, "DELETE", path, nil, nil); return err }, http.StatusForbidden},
		{"a Contributor without a PIN (the machines are checked first)", func() error { _, err := fx.contributor.Do(ctx, "DELETE", path, nil, nil); return err }, http.StatusConflict},
	}
	for _, try := range tries {
		err := try.do()
		if err == nil {
			t.Errorf("%s deleted vault %s", try.who, v.Name)
			continue
		}
		if got := status(err); got != try.want && !(try.want == http.StatusUnauthorized && got == http.StatusForbidden) {
			t.Errorf("%s: answer %d (%v), want %d", try.who, got, err, try.want)
		}
	}
	pin := newPIN(t, fx.contributor, v.ID)
	if _, err := fx.contributor.Do(ctx, "DELETE", path, nil, nil, pinHeader(pin)); status(err) != http.StatusConflict {
		t.Errorf("a Contributor with a PIN deleting a vault that has a machine: %v, want 409", err)
	}
	// The refusal came before the PIN was looked at: it still works once.
	if _, err := fx.contributor.Do(ctx, "DELETE", path, nil, nil, pinHeader(pin)); status(err) != http.StatusConflict {
		t.Errorf("a second try with the same PIN: %v, want 409 again (not a used PIN)", err)
	}
	var got wire.Vault
	if _, err := fx.reader.Do(ctx, "GET", path, nil, &got); err != nil || got.ID != v.ID {
		t.Fatalf("the vault is gone after the refused deletes: %v", err)
	}
	if _, err := fx.reader.Do(ctx, "GET", path+"/machines/"+m.id, nil, nil); err != nil {
		t.Fatalf("the machine is gone after the refused deletes: %v", err)
	}
}
