package adversary

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Attack 2: a machine given a PIN to change its passphrase uploads junk at
// keys/<64 hex> (its create-only SAS allows new objects), gets the change
// approved, then asks the control plane to retire the real key file,
// naming the junk as its replacement. On the old code the real key file
// was deleted and the machine's history could no longer be opened. Only a
// real key file is accepted as the replacement, and the real key stays.
func TestJunkKeyCannotRetireTheRealKey(t *testing.T) {
	m := fx.victim
	keys := m.blobs(t, "keys/")
	if len(keys) == 0 {
		t.Fatalf("%s's container holds no key file", m.name)
	}
	real := slices.Sorted(maps.Keys(keys))[0]

	junk := "keys/" + randomHex(32)
	if err := m.upload(t, junk, []byte("not a key file, just junk the attacker wrote")); err != nil {
		t.Fatalf("upload the junk key with the machine's own SAS: %v", err)
	}
	pin := newPIN(t, fx.contributor, fx.vault.ID)
	agent := m.agent(fx.cp)
	if _, err := agent.Do(t.Context(), "POST", wire.Version+"/agent/passphrase-change", nil, nil, pinHeader(pin)); err != nil {
		t.Fatalf("passphrase change with a PIN: %v", err)
	}
	// As in the issue: naming only the real key.
	var answer map[string]string
	if _, err := agent.Do(t.Context(), "POST", wire.Version+"/agent/retire-key", map[string]string{"key": real[len("keys/"):]}, &answer); err == nil {
		t.Errorf("retiring %s without naming a replacement was accepted: %v", real, answer)
	}
	if after := m.blobs(t, "keys/"); !bytes.Equal(after[real], keys[real]) {
		t.Fatalf("the real key file %s is gone or changed after a retire-key naming it alone", real)
	}
	// Naming the junk as its replacement.
	_, err := agent.Do(t.Context(), "POST", wire.Version+"/agent/retire-key", wire.RetireKey{Key: real[len("keys/"):], Replacement: junk[len("keys/"):]}, &answer)
	if err == nil {
		t.Errorf("retiring %s with junk as its replacement was accepted: %v", real, answer)
	} else if s := status(err); s < 400 || s >= 500 {
		t.Errorf("retiring the real key with junk as its replacement: %v; want a 4xx refusal", err)
	}
	after := m.blobs(t, "keys/")
	if !bytes.Equal(after[real], keys[real]) {
		t.Fatalf("the real key file %s is gone or changed after the attack", real)
	}
	// The same with the full object names, as a sloppy client might send.
	agent.Do(t.Context(), "POST", wire.Version+"/agent/retire-key", wire.RetireKey{Key: real, Replacement: junk}, nil)
	if after := m.blobs(t, "keys/"); !bytes.Equal(after[real], keys[real]) {
		t.Fatalf("the real key file %s is gone or changed after the attack with full object names", real)
	}
}
