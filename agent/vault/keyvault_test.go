package vault

import (
	"encoding/base64"
	"strings"
	"testing"
)

func jwt(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(claims)) + ".c2ln"
}

func TestTokenObjectID(t *testing.T) {
	for _, tc := range []struct {
		name, token, want string
	}{
		{"Entra ID access token", jwt(`{"aud":"https://vault.azure.net","oid":"aaaaaaaa-0000-4000-8000-00000000000a","tid":"x"}`), "aaaaaaaa-0000-4000-8000-00000000000a"},
		{"padded middle part", strings.Replace(jwt(`{"oid":"aaaaaaaa-0000-4000-8000-00000000000a"}`), ".c2ln", "==.c2ln", 1), "aaaaaaaa-0000-4000-8000-00000000000a"},
		{"no oid", jwt(`{"aud":"x"}`), ""},
		{"oid not a GUID", jwt(`{"oid":"$(rm -rf /)"}`), ""},
		{"opaque token", "coffer-local-emulator", ""},
		{"claims not JSON", "a.bm90IGpzb24.c", ""},
		{"claims not base64", "a.!!!.c", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TokenObjectID(tc.token); got != tc.want {
				t.Fatalf("TokenObjectID = %q, want %q", got, tc.want)
			}
		})
	}
}

// The command a refused machine prints names its own role, identity and
// secret, with the vault taken from the URL's host.
func TestGrantCommand(t *testing.T) {
	got := grantCommand("https://kv-abc123.vault.azure.net/", "coffer-passphrase-m1", "aaaaaaaa-0000-4000-8000-00000000000a")
	for _, want := range []string{`--role "Coffer Machine Passphrase (kv-abc123)"`, "--assignee-object-id aaaaaaaa-0000-4000-8000-00000000000a",
		"--assignee-principal-type ServicePrincipal", "az keyvault show --name kv-abc123 ", "/secrets/coffer-passphrase-m1"} {
		if !strings.Contains(got, want) {
			t.Errorf("%s\ndoes not contain %s", got, want)
		}
	}
}

// FuzzTokenObjectID: whatever the token, the result is "" or a GUID, so it
// is safe to print in a shell command.
func FuzzTokenObjectID(f *testing.F) {
	f.Add(jwt(`{"oid":"aaaaaaaa-0000-4000-8000-00000000000a"}`))
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		if got := TokenObjectID(token); got != "" && !isGUID(got) {
			t.Fatalf("TokenObjectID(%q) = %q, not a GUID", token, got)
		}
	})
}
