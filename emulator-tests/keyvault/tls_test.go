package keyvault_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

func TestClientTrustingTheCAWorksOverHTTPS(t *testing.T) {
	s, c, _ := startWithClient(t)
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/") {
		t.Fatalf("URL %q, want https://127.0.0.1:PORT/", s.URL())
	}
	set(t, c, "over-tls", "v")
	got, err := c.GetSecret(t.Context(), "over-tls", "", nil)
	if err != nil || *got.Value != "v" {
		t.Fatalf("get over TLS: %v", err)
	}
}

func TestCertificateCoversEveryLoopbackName(t *testing.T) {
	s := startServer(t, keyvault.Options{})
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: s.CertPool()})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	state := conn.ConnectionState()
	_ = conn.Close()
	leaf := state.PeerCertificates[0]
	if key, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() {
		t.Errorf("server key %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		t.Run(host, func(t *testing.T) {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: s.CertPool(), DNSName: host}); err != nil {
				t.Fatalf("certificate does not verify for %s: %v", host, err)
			}
		})
	}
}

func TestClientNotTrustingTheCAFailsWithACertificateError(t *testing.T) {
	s := startServer(t, keyvault.Options{})
	other := startServer(t, keyvault.Options{})
	noRetry := policy.RetryOptions{MaxRetries: -1} // a TLS failure is not worth retrying with backoff

	for _, tc := range []struct {
		name string
		opts *azsecrets.ClientOptions
	}{
		{"system roots only", &azsecrets.ClientOptions{
			ClientOptions:                        azcore.ClientOptions{Retry: noRetry},
			DisableChallengeResourceVerification: true,
		}},
		{"another emulator's CA", func() *azsecrets.ClientOptions {
			o := other.ClientOptions() // every Start makes its own CA
			o.Retry = noRetry
			return o
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := azsecrets.NewClient(s.URL(), keyvault.Credential(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetSecret(t.Context(), "anything", "", nil)
			var unknownCA x509.UnknownAuthorityError
			if !errors.As(err, &unknownCA) {
				t.Fatalf("got %v, want x509.UnknownAuthorityError", err)
			}
		})
	}
}

func TestWriteCACertIsPEMOfTheCA(t *testing.T) {
	s := startServer(t, keyvault.Options{})
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := s.WriteCACert(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(s.CACertPEM()) {
		t.Fatal("written file differs from CACertPEM")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("CA file holds no PEM certificate")
	}
	if err := s.WriteCACert(filepath.Join(t.TempDir(), "missing-dir", "ca.pem")); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

// childURLEnv tells a re-executed test binary to act as the child process.
const childURLEnv = "KEYVAULT_EMULATOR_CHILD_URL"

// TestChildProcessTrustsEmulatorThroughSSLCertFile proves the route other
// processes use: write the CA, point SSL_CERT_FILE at it, and a client with
// default transport settings trusts the emulator.
func TestChildProcessTrustsEmulatorThroughSSLCertFile(t *testing.T) {
	if vaultURL := os.Getenv(childURLEnv); vaultURL != "" {
		childUsesDefaultTransport(t, vaultURL)
		return
	}
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" {
		t.Skip("only Linux and BSD Go read SSL_CERT_FILE for the system roots")
	}
	s, c, _ := startWithClient(t)
	set(t, c, "from-parent", "hello child")
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	if err := s.WriteCACert(caPath); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestChildProcessTrustsEmulatorThroughSSLCertFile$", "-test.count=1")
	cmd.Env = append(os.Environ(), childURLEnv+"="+s.URL(), "SSL_CERT_FILE="+caPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("child did not pass:\n%s", out)
	}
}

func childUsesDefaultTransport(t *testing.T, vaultURL string) {
	c, err := azsecrets.NewClient(vaultURL, keyvault.Credential(), &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetSecret(t.Context(), "from-parent", "", nil)
	if err != nil {
		t.Fatalf("child get: %v", err)
	}
	if *got.Value != "hello child" {
		t.Fatalf("child got %q", *got.Value)
	}
}

func TestCloseStopsListenerAndLeaksNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := keyvault.Start(keyvault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := azsecrets.NewClient(s.URL(), keyvault.Credential(), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	v := "x"
	if _, err := c.SetSecret(t.Context(), "before-close", azsecrets.SetSecretParameters{Value: &v}, nil); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.URL())
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if conn, err := net.Dial("tcp", u.Host); err == nil {
		_ = conn.Close()
		t.Fatal("listener still accepts connections after Close")
	}
	waitForGoroutines(t, before)
}

func TestListenAddressYieldsADialableVaultURL(t *testing.T) {
	for _, tc := range []struct {
		addr, wantPrefix string
	}{
		{"", "https://127.0.0.1:"},
		{"127.0.0.1:0", "https://127.0.0.1:"},
		{"localhost:0", "https://127.0.0.1:"},
		{":0", "https://127.0.0.1:"}, // a wildcard listener is reached through loopback
		{"[::1]:0", "https://[::1]:"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if strings.Contains(tc.addr, "::1") {
				if ln, err := net.Listen("tcp", tc.addr); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					_ = ln.Close()
				}
			}
			s := startServer(t, keyvault.Options{Addr: tc.addr})
			if !strings.HasPrefix(s.URL(), tc.wantPrefix) {
				t.Fatalf("URL %s, want prefix %s", s.URL(), tc.wantPrefix)
			}
			r := set(t, newClient(t, s), "addr", "v")
			if !strings.HasPrefix(string(*r.ID), s.URL()+"secrets/addr/") {
				t.Fatalf("id %s not under %s", *r.ID, s.URL())
			}
		})
	}
	if _, err := keyvault.Start(keyvault.Options{Addr: "256.0.0.1:0"}); err == nil {
		t.Fatal("listening on an invalid address succeeded")
	}
}
