package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

func TestDeleteVaultOnlyWhenNoMachineIsLeft(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := context.Background()
	v := vaultNamed(t, r, "gone")
	if _, err := r.PutPolicy(ctx, v.ID, "daily", policy.Default("UTC")); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := reqsign.NewKey()
	m, err := r.Register(ctx, wire.Register{VaultID: v.ID, MachineName: "branch-01", PublicKey: reqsign.EncodePublicKey(pub)})
	if err != nil {
		t.Fatal(err)
	}
	// Soft-deleted data can still be undeleted: the vault stays.
	for _, step := range []Transition{Stop, StopDelete} {
		if _, _, err := r.Transition(ctx, m.ID, step); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.DeleteVault(ctx, v.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete a vault with a deleted, unpurged machine: %v, want a conflict", err)
	}
	if _, err := r.Vault(ctx, v.ID); err != nil {
		t.Fatalf("a refused delete removed the vault: %v", err)
	}

	full, _ := r.Machine(ctx, m.ID)
	if err := r.RemoveMachine(ctx, full); err != nil { // what the purge does
		t.Fatal(err)
	}
	if err := r.DeleteVault(ctx, v.ID); err != nil {
		t.Fatalf("delete an empty vault: %v", err)
	}
	if _, err := r.Vault(ctx, v.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the vault is still there: %v", err)
	}
	if ps, err := r.Policies(ctx, v.ID); err != nil || len(ps) != 0 {
		t.Fatalf("policies left behind: %v %v", ps, err)
	}
	if err := r.DeleteVault(ctx, v.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete it again: %v, want not found", err)
	}
	// Its name is free again.
	if _, err := r.CreateVault(ctx, wire.NewVault{Name: v.Name}); err != nil {
		t.Fatalf("the name of a deleted vault: %v", err)
	}
}

func TestCreateVaultChecksTheName(t *testing.T) {
	r, _ := newRegistry(t)
	for _, bad := range []string{"", "branch offices", "-x", "0123456789abcdef0123"} {
		if _, err := r.CreateVault(context.Background(), wire.NewVault{Name: bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("vault name %q: %v, want invalid", bad, err)
		}
	}
}
