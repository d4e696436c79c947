package keyvault_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

// api-version is required and must be one Key Vault serves; anything else is
// a 400 BadParameter in Key Vault's error shape naming the latest version,
// as the service answers. What the SDKs send is accepted: azsecrets v1.5.1
// (the azsecrets tests) and @azure/keyvault-secrets (emulator-tests/sdkconformance).
func TestAPIVersionIsRequiredAndMustBeOneKeyVaultServes(t *testing.T) {
	s := startServer(t, keyvault.Options{})
	hc := rawClient(t, s)
	for _, tc := range []struct {
		name, query, message string
	}{
		{"missing", "", "The 'api-version' query parameter is missing. Consider using the latest supported version (2026-04-01)."},
		{"empty", "?api-version=", "The 'api-version' query parameter is missing."},
		{"other parameter only", "?maxresults=1", "The 'api-version' query parameter is missing."},
		{"unknown", "?api-version=7.9", "The specified version (7.9) is not recognized. Consider using the latest supported version (2026-04-01)."},
		{"future", "?api-version=2099-01-01", "The specified version (2099-01-01) is not recognized."},
		{"not a version", "?api-version=not-a-version", "The specified version (not-a-version) is not recognized."},
		{"case differs", "?api-version=7.6-PREVIEW.2", "The specified version (7.6-PREVIEW.2) is not recognized."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, hc, s, http.MethodGet, "/secrets"+tc.query, "Bearer t", nil)
			wantErrorDoc(t, r, http.StatusBadRequest, "BadParameter")
			var doc struct{ Error struct{ Message string } }
			if err := json.Unmarshal(r.body, &doc); err != nil || !strings.Contains(doc.Error.Message, tc.message) {
				t.Fatalf("message %q, want it to contain %q", doc.Error.Message, tc.message)
			}
		})
	}
	for _, v := range append(keyvault.SupportedAPIVersions, "2025-07-01", "2026-04-01", "7.4") {
		if r := do(t, hc, s, http.MethodGet, "/secrets?api-version="+url.QueryEscape(v), "Bearer t", nil); r.status != http.StatusOK {
			t.Fatalf("api-version %s: status %d, want 200: %s", v, r.status, r.body)
		}
	}
	// The unauthenticated challenge comes first, whatever the version, so a
	// client learns where to get a token before anything else.
	if r := do(t, hc, s, http.MethodGet, "/secrets?api-version=nope", "", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("no token, bad version: status %d, want 401", r.status)
	}
}

// A tag name may have 512 characters and a value 256 (characters, not
// bytes); a secret at most 15 tags. Past that, set and update are refused
// with 400 BadParameter and nothing changes.
func TestTagLimitsAreEnforced(t *testing.T) {
	s := startServer(t, keyvault.Options{})
	c := newClient(t, s)
	tags := func(n int, name, value string) map[string]*string {
		m := map[string]*string{}
		for i := 0; i < n; i++ {
			m[name+string(rune('a'+i))] = ptr(value)
		}
		return m
	}
	setTags := func(name string, tg map[string]*string) error {
		_, err := c.SetSecret(t.Context(), name, azsecrets.SetSecretParameters{Value: ptr("v"), Tags: tg}, nil)
		return err
	}
	longName := strings.Repeat("n", 511) // plus one letter from tags()
	if err := setTags("limits", tags(15, longName, strings.Repeat("é", 256))); err != nil {
		t.Fatalf("15 tags, 512-character names, 256-character values (512 bytes): %v", err)
	}
	for _, tc := range []struct {
		name string
		tags map[string]*string
	}{
		{"16 tags", tags(16, "t", "v")},
		{"513-character name", tags(1, strings.Repeat("n", 512), "v")},
		{"257-character value", tags(1, "t", strings.Repeat("v", 257))},
		{"257 two-byte characters", tags(1, "t", strings.Repeat("é", 257))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantResponseError(t, setTags("refused", tc.tags), http.StatusBadRequest, "BadParameter")
			_, err := c.UpdateSecretProperties(t.Context(), "limits", "", azsecrets.UpdateSecretPropertiesParameters{Tags: tc.tags}, nil)
			wantResponseError(t, err, http.StatusBadRequest, "BadParameter")
		})
	}
	got, err := c.GetSecret(t.Context(), "limits", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tags) != 15 {
		t.Fatalf("after refused updates the secret has %d tags, want its 15", len(got.Tags))
	}
	if _, err := c.GetSecret(t.Context(), "refused", "", nil); err == nil {
		t.Fatal("a secret refused for its tags was stored")
	}
}
