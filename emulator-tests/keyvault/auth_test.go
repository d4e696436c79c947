package keyvault_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

const testTenant = "0a1b2c3d-0000-4000-8000-123456789abc"

func TestRequestWithoutTokenGetsBearerChallenge(t *testing.T) {
	s := startServer(t, keyvault.Options{TenantID: testTenant})
	hc := rawClient(t, s)

	r := do(t, hc, s, http.MethodGet, "/secrets/anything?api-version=2026-04-01", "", nil)
	wantErrorDoc(t, r, http.StatusUnauthorized, "Unauthorized")
	// Exactly Key Vault's format: the azsecrets policy splits it on spaces and '='.
	want := `Bearer authorization="https://login.microsoftonline.com/` + testTenant + `", resource="https://vault.azure.net"`
	if got := r.header.Get("WWW-Authenticate"); got != want {
		t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, want)
	}
}

func TestDefaultTenantIsNamedInChallenge(t *testing.T) {
	s := startServer(t, keyvault.Options{})
	r := do(t, rawClient(t, s), s, http.MethodGet, "/secrets?api-version=1", "", nil)
	want := `Bearer authorization="https://login.microsoftonline.com/c0ffee00-0000-4000-8000-00000000c0ff", resource="https://vault.azure.net"`
	if got := r.header.Get("WWW-Authenticate"); got != want {
		t.Fatalf("WWW-Authenticate %s, want %s", got, want)
	}
}

func TestAuthorizationHeaderMustBeABearerToken(t *testing.T) {
	s := startServer(t, keyvault.Options{})
	hc := rawClient(t, s)
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"Bearer any-token-at-all", http.StatusOK},
		{"bearer scheme-is-case-insensitive", http.StatusOK},
		{"Bearer eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2ln==", http.StatusOK},
		{"Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer two tokens", http.StatusUnauthorized},
		{`Bearer "quoted"`, http.StatusUnauthorized},
		{"Bearer ===", http.StatusUnauthorized},
		{"PoP-ish token", http.StatusUnauthorized},
	} {
		t.Run(tc.auth, func(t *testing.T) {
			r := do(t, hc, s, http.MethodGet, "/secrets?api-version=7.4", tc.auth, nil)
			if tc.want == http.StatusOK {
				if r.status != http.StatusOK {
					t.Fatalf("status %d, want 200; body %s", r.status, r.body)
				}
				return
			}
			wantErrorDoc(t, r, tc.want, "Unauthorized")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without a challenge")
			}
		})
	}
}

func TestClientCompletesChallengeFlowWithOneToken(t *testing.T) {
	s := startServer(t, keyvault.Options{TenantID: testTenant})
	cred := &countingCredential{}
	opts := s.ClientOptions()
	rec := &recordingTransport{next: opts.Transport}
	opts.Transport = rec
	c, err := azsecrets.NewClient(s.URL(), cred, opts)
	if err != nil {
		t.Fatal(err)
	}

	set(t, c, "flow", "challenge-passed")
	got, err := c.GetSecret(t.Context(), "flow", "", nil)
	if err != nil || *got.Value != "challenge-passed" {
		t.Fatalf("get after challenge: %v", err)
	}
	if _, err := c.NewListSecretPropertiesPager(nil).NextPage(t.Context()); err != nil {
		t.Fatalf("list: %v", err)
	}

	// The token is fetched once, for the tenant and resource the challenge named, then cached.
	if len(cred.calls) != 1 {
		t.Fatalf("GetToken called %d times, want 1", len(cred.calls))
	}
	if tro := cred.calls[0]; tro.TenantID != testTenant || !slices.Equal(tro.Scopes, []string{"https://vault.azure.net/.default"}) {
		t.Fatalf("token requested for tenant %q scopes %v", tro.TenantID, tro.Scopes)
	}
	// The first request goes out bare (without its body) and draws the 401;
	// the retry carries the token and the body, which the vault stored.
	want := []exchange{
		{method: http.MethodPut, path: "/secrets/flow", auth: false, hasBody: false, status: http.StatusUnauthorized},
		{method: http.MethodPut, path: "/secrets/flow", auth: true, hasBody: true, status: http.StatusOK},
		{method: http.MethodGet, path: "/secrets/flow/", auth: true, status: http.StatusOK},
		{method: http.MethodGet, path: "/secrets", auth: true, status: http.StatusOK},
	}
	if !slices.Equal(rec.calls, want) {
		t.Fatalf("exchanges\n got %+v\nwant %+v", rec.calls, want)
	}
}

// The credential for local use must satisfy the bearer policy: a token and a future expiry.
func TestCredentialReturnsTokenValidForAnHour(t *testing.T) {
	tok, err := keyvault.Credential().GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil || tok.Token == "" {
		t.Fatalf("token %q, err %v", tok.Token, err)
	}
	if left := time.Until(tok.ExpiresOn); left < 59*time.Minute || left > 61*time.Minute {
		t.Fatalf("token expires in %v, want about an hour", left)
	}
}
