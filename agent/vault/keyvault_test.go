package vault

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// The emulator's CA in SSL_CERT_FILE is trusted explicitly, as Go reads
// that variable only on Unix; this runs on Windows too (the Windows lane).
func TestEmulatorTransportTrustsTheCAInSSLCertFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "vault") }))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", ca)
	c, err := emulatorTransport()
	if err != nil || c == nil {
		t.Fatalf("emulatorTransport = %v, %v", c, err)
	}
	res, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("the emulator's CA is not trusted: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "vault" {
		t.Errorf("body %q", body)
	}

	t.Setenv("SSL_CERT_FILE", "")
	if c, err := emulatorTransport(); c != nil || err != nil {
		t.Errorf("without SSL_CERT_FILE: %v, %v; want the SDK's transport (nil, nil)", c, err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", notPEM)
	if _, err := emulatorTransport(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a file without a certificate: %v", err)
	}
	t.Setenv("SSL_CERT_FILE", filepath.Join(dir, "missing.pem"))
	if _, err := emulatorTransport(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want it to wrap ErrNotExist", err)
	}
}
