package containers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// keyFile writes a well-formed key file (random wrapped bytes) and returns
// its ID.
func (f *fixture) keyFile() string {
	f.t.Helper()
	b := keyFileBytes()
	id := sha(b)
	f.put("keys/"+id, b)
	return id
}

func keyFileBytes() []byte {
	salt, data := make([]byte, 16), make([]byte, 124)
	rand.Read(salt)
	rand.Read(data)
	return fmt.Appendf(nil, `{"version":1,"created":"2026-11-22T10:00:00Z","hostname":"branch","wrapped":{"kdf":{"algorithm":"argon2id","time":3,"memoryKiB":65536,"threads":4,"salt":%q},"data":%q}}`,
		base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(data))
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f *fixture) read(name string) []byte {
	f.t.Helper()
	b, _, err := readSmall(f.t.Context(), f.cc, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// Issue 10 row 2: a junk blob under keys/ is no replacement, nothing is
// ever deleted for good, and an undelete brings the key back even when an
// agent took its name meanwhile.
func TestRetireKeySoftDeletesOnlyForAValidReplacement(t *testing.T) {
	clock := time.Now()
	f := newFixture(t, func() time.Time { return clock })
	f.c.SoftDeleteFor = 20 * day
	ctx := t.Context()
	real := f.keyFile()
	realBytes := f.read("keys/" + real)
	junk := newID()
	f.put("keys/"+junk, []byte("not a key file"))
	misnamed := newID()
	f.put("keys/"+misnamed, keyFileBytes()) // well-formed, but not named by its hash

	for _, tc := range []struct {
		name, key, replacement string
		want                   error
	}{
		{"junk replacement", real, junk, ErrBadReplacement},
		{"misnamed replacement", real, misnamed, ErrBadReplacement},
		{"absent replacement", real, newID(), ErrBadReplacement},
		{"itself", real, real, ErrLastKey},
		{"absent key", newID(), real, ErrNoSuchKey},
		{"bad ID", "../config", real, ErrNoSuchKey},
	} {
		if _, err := f.c.RetireKey(ctx, f.name, tc.key, tc.replacement); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if !slices.Contains(f.names("keys/"), "keys/"+real) {
		t.Fatal("a refused retirement removed the real key")
	}

	next := f.keyFile()
	dk, err := f.c.RetireKey(ctx, f.name, real, next)
	if err != nil {
		t.Fatal(err)
	}
	if dk.KeyID != real || dk.ReplacedBy != next || !dk.PurgeAfter.Equal(dk.DeletedAt.Add(20*day)) {
		t.Fatalf("deleted key %+v", dk)
	}
	if slices.Contains(f.names("keys/"), "keys/"+real) {
		t.Fatal("the retired key is still under keys/")
	}
	listed, err := f.c.DeletedKeys(ctx, f.name)
	if err != nil || len(listed) != 1 || listed[0].KeyID != real || listed[0].ReplacedBy != next || listed[0].Size != int64(len(realBytes)) {
		t.Fatalf("DeletedKeys = %+v, %v", listed, err)
	}

	// An agent takes the free name with junk; the undelete sets it aside.
	f.put("keys/"+real, []byte("impostor"))
	if _, err := f.c.UndeleteKey(ctx, f.name, real); err != nil {
		t.Fatal(err)
	}
	if got := f.read("keys/" + real); string(got) != string(realBytes) {
		t.Fatalf("undeleted key holds %q", got)
	}
	listed, _ = f.c.DeletedKeys(ctx, f.name)
	if len(listed) != 1 || listed[0].KeyID != real || !strings.Contains(listed[0].Reason, "took the name") {
		t.Fatalf("after undelete: %+v, want the impostor kept in soft delete", listed)
	}
	if _, err := f.c.UndeleteKey(ctx, f.name, newID()); !errors.Is(err, ErrNotDeleted) {
		t.Fatalf("undelete of a key never retired: %v", err)
	}

	// Purged at the end of the period, not before.
	clock = clock.Add(20*day - time.Minute)
	if n, err := f.c.PurgeDeletedKeys(ctx); err != nil || n != 0 {
		t.Fatalf("early purge: %d, %v", n, err)
	}
	clock = clock.Add(time.Minute)
	if n, err := f.c.PurgeDeletedKeys(ctx); err != nil || n < 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if listed, _ := f.c.DeletedKeys(ctx, f.name); len(listed) != 0 {
		t.Fatalf("after purge: %+v", listed)
	}
	if _, err := f.c.UndeleteKey(ctx, f.name, real); !errors.Is(err, ErrNotDeleted) {
		t.Fatalf("undelete after purge: %v", err)
	}
}

func TestCheckKeyFile(t *testing.T) {
	good := keyFileBytes()
	if err := CheckKeyFile(sha(good), good); err != nil {
		t.Fatalf("a well-formed key file: %v", err)
	}
	for name, mutate := range map[string]func(string) string{
		"unknown field": func(s string) string { return strings.Replace(s, `"version":1`, `"version":1,"x":1`, 1) },
		"version 2":     func(s string) string { return strings.Replace(s, `"version":1`, `"version":2`, 1) },
		"scrypt":        func(s string) string { return strings.Replace(s, `argon2id`, `scrypt`, 1) },
		"tiny memory":   func(s string) string { return strings.Replace(s, `65536`, `1024`, 1) },
		"no wrap":       func(s string) string { return s[:strings.Index(s, `,"wrapped"`)] + "}" },
		"trailing":      func(s string) string { return s + "{}" },
		"short data":    func(s string) string { return s[:strings.LastIndex(s, `"data":"`)+8] + `AAAA"}}` },
	} {
		b := []byte(mutate(string(good)))
		if err := CheckKeyFile(sha(b), b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := CheckKeyFile(newID(), good); err == nil {
		t.Error("a key file not named by its hash: accepted")
	}
}

func FuzzCheckKeyFile(f *testing.F) {
	f.Add(keyFileBytes())
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		CheckKeyFile(sha(b), b) // must not panic
	})
}

func TestDeletedKeysOfAContainerWithNone(t *testing.T) {
	f := newFixture(t, time.Now)
	if dks, err := f.c.DeletedKeys(t.Context(), f.name); err != nil || len(dks) != 0 {
		t.Fatalf("%+v, %v", dks, err)
	}
	if _, err := f.c.RetireKey(t.Context(), "absent-"+f.name, newID(), newID()); err == nil || !bloberror.HasCode(err, bloberror.ContainerNotFound) && !errors.Is(err, ErrBadReplacement) {
		t.Fatalf("retire in a missing container: %v", err)
	}
}
