package registry

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/shared/clocktest"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

var emu ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emu.Main(m)) }

func newRegistry(t *testing.T) (*Registry, *clocktest.Fake) {
	c := clocktest.New(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	r := New(emu.Tables(t), c.Now)
	if err := r.EnsureTables(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, c
}

func vaultNamed(t *testing.T, r *Registry, name string) wire.Vault {
	v, err := r.CreateVault(context.Background(), wire.NewVault{Name: name + "-" + NewID()[:6]})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCredentialsLast48HoursAndOnlyTheNewestWorks(t *testing.T) {
	r, c := newRegistry(t)
	ctx := context.Background()
	v := vaultNamed(t, r, "creds")
	id1, s1, exp, err := r.NewCredentials(ctx, v.ID)
	if err != nil || !exp.Equal(c.Now().Add(CredentialsTTL)) {
		t.Fatalf("credentials: %v %s", err, exp)
	}
	if err := r.CheckCredentials(ctx, v.ID, id1, s1); err != nil {
		t.Fatal(err)
	}
	id2, s2, _, err := r.NewCredentials(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		vault, id   string
		secret      string
		want        error
		afterExpiry bool
	}{
		{"superseded", v.ID, id1, s1, ErrSuperseded, false},
		{"wrong secret", v.ID, id2, s1, ErrBadSecret, false},
		{"unknown vault", "0123456789abcdef0123", id2, s2, ErrBadSecret, false},
		{"newest works", v.ID, id2, s2, nil, false},
		{"expired", v.ID, id2, s2, ErrExpired, true},
	} {
		if tc.afterExpiry {
			c.Advance(CredentialsTTL)
		}
		if err := r.CheckCredentials(ctx, tc.vault, tc.id, tc.secret); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestNamesAreUniqueIgnoringCaseAndFreedByRemoval(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := context.Background()
	v := vaultNamed(t, r, "names")
	if _, err := r.CreateVault(ctx, wire.NewVault{Name: v.Name}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second vault named %s: %v", v.Name, err)
	}
	pub, _, _ := reqsign.NewKey()
	reg := wire.Register{VaultID: v.ID, MachineName: "Branch-01", PublicKey: reqsign.EncodePublicKey(pub),
		KeyVaultPrincipalID: "aaaaaaaa-0000-4000-8000-00000000000a"}
	m, err := r.Register(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	// Kept for the purge, which takes the identity's Key Vault role back.
	if full, err := r.Machine(ctx, m.ID); err != nil || full.KeyVaultPrincipal != reg.KeyVaultPrincipalID {
		t.Fatalf("the machine's Key Vault identity was not kept: %q, %v", full.KeyVaultPrincipal, err)
	}
	reg.MachineName = "branch-01"
	if _, err := r.Register(ctx, reg); !errors.Is(err, ErrConflict) {
		t.Fatalf("same name, other case: %v", err)
	}
	found, err := r.FindMachine(ctx, v.ID, "BRANCH-01")
	if err != nil || found.ID != m.ID {
		t.Fatalf("find by name: %+v %v", found, err)
	}
	full, _ := r.Machine(ctx, m.ID)
	if err := r.RemoveMachine(ctx, full); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, reg); err != nil {
		t.Fatalf("name not freed by removal: %v", err)
	}
	for _, bad := range []string{"", "has space", "slash/name", string(make([]byte, 64))} {
		reg.MachineName = bad
		if _, err := r.Register(ctx, reg); !errors.Is(err, ErrInvalid) {
			t.Fatalf("machine name %q: %v", bad, err)
		}
	}
}

func TestSoftDeletePeriodIsFixedWhenDataIsDeleted(t *testing.T) {
	r, c := newRegistry(t)
	ctx := context.Background()
	v := vaultNamed(t, r, "soft")
	pub, _, _ := reqsign.NewKey()
	m, err := r.Register(ctx, wire.Register{VaultID: v.ID, MachineName: "b1", PublicKey: reqsign.EncodePublicKey(pub)})
	if err != nil {
		t.Fatal(err)
	}
	r.SoftDelete = 30 * 24 * time.Hour
	now := c.Now()
	got, err := r.ModifyMachine(ctx, m.ID, func(mm *Machine) error {
		mm.State, mm.DeletedAt = wire.MachineDeleted, &now
		return nil
	})
	if err != nil || got.PurgeAfter == nil || !got.PurgeAfter.Equal(now.Add(30*24*time.Hour)) {
		t.Fatalf("purge date: %+v %v", got.PurgeAfter, err)
	}
	// A later change of the setting does not move it.
	r.SoftDelete = 14 * 24 * time.Hour
	got, err = r.ModifyMachine(ctx, m.ID, func(mm *Machine) error { mm.Policy = "p"; return nil })
	if err != nil || !got.PurgeAfter.Equal(now.Add(30*24*time.Hour)) {
		t.Fatalf("purge date moved: %+v %v", got.PurgeAfter, err)
	}
}
