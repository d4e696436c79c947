package adversary

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Attack 5: guess the PIN. On the old code 5,000 wrong PINs were
// refused one by one, then the right one worked, and nobody was told.
// Five wrong PINs void the vault's PIN and refuse PINs for 15 minutes, and
// a critical alert names who guessed.
func TestGuessingThePINLocksTheVaultAndAlerts(t *testing.T) {
	ctx := t.Context()
	// A vault of its own: the lockout must not hold up the other attacks.
	v, err := fx.newVault(ctx, "pin-guessing")
	if err != nil {
		t.Fatal(err)
	}
	turnOff := func(c *cpclient.Client, pin string) error {
		off := false
		_, err := c.Do(ctx, "PATCH", wire.Version+"/vaults/"+v.ID, wire.VaultUpdate{SecurityFeatures: &off}, nil, pinHeader(pin))
		return err
	}
	pin := newPIN(t, fx.contributor, v.ID)
	for i := range 5 {
		wrong := fmt.Sprintf("%08d", (i*7919+13)%100_000_000)
		if wrong == pin {
			wrong = fmt.Sprintf("%08d", (i*7919+14)%100_000_000)
		}
		err := turnOff(fx.contributor, wrong)
		if c := cpclient.Code(err); c != wire.CodePINInvalid && c != wire.CodePINLocked {
			t.Fatalf("wrong PIN %d: %v; want %s", i+1, err, wire.CodePINInvalid)
		}
	}
	err = turnOff(fx.contributor, pin)
	if c := cpclient.Code(err); c != wire.CodePINInvalid && c != wire.CodePINLocked {
		t.Errorf("the right PIN after 5 wrong ones: %v; want it void", err)
	}
	// A new PIN does not help while the vault is locked.
	var fresh wire.PIN
	_, err = fx.contributor.Do(ctx, "POST", wire.Version+"/vaults/"+v.ID+"/pin", nil, &fresh)
	if err == nil {
		err = turnOff(fx.contributor, fresh.PIN)
	}
	if status(err) != http.StatusTooManyRequests || cpclient.Code(err) != wire.CodePINLocked {
		t.Errorf("a new PIN during the lockout: %v; want 429 %s", err, wire.CodePINLocked)
	}
	var got wire.Vault
	if _, err := fx.reader.Do(ctx, "GET", wire.Version+"/vaults/"+v.ID, nil, &got); err != nil {
		t.Fatal(err)
	}
	if !got.SecurityFeatures {
		t.Fatal("the guessed PIN turned the vault's security features off")
	}
	as := alerts(t, fx.reader, v.ID)
	if !slices.ContainsFunc(as, func(a wire.Alert) bool {
		return a.Severity == wire.SeverityCritical && strings.Contains(a.Title+a.Detail, "token:backup-contributor")
	}) {
		t.Errorf("no critical alert names the source of the wrong PINs (token:backup-contributor): %+v", as)
	}

	// Sixteen minutes later PINs work again.
	tm := timeMachine(t)
	tm.advance(t, 16*time.Minute)
	later := newPIN(t, tm.admin(), v.ID)
	if err := turnOff(tm.admin(), later); err != nil {
		t.Errorf("a new PIN after the 15-minute lockout: %v", err)
	}
}
