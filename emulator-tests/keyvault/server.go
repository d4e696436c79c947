// Package keyvault is an in-process emulator of the Azure Key Vault secrets
// data plane. It is faithful enough that the real azsecrets client works
// against it unmodified: HTTPS with a generated CA, the bearer challenge flow,
// secret versions, paging, soft delete, recover, purge, backup and restore;
// and, when asked, purge protection and Azure RBAC (tokens mapped to
// principals, role assignments at the vault or one secret), so tests can
// prove what one machine's identity cannot do to another's secret.
package keyvault

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/devcert"
)

const (
	// defaultTenantID is the tenant named in the challenge when Options.TenantID is empty.
	// The client needs some tenant, or it elicits a new challenge before every request.
	defaultTenantID = "c0ffee00-0000-4000-8000-00000000c0ff"
	// defaultRecoverableDays is Key Vault's default soft-delete retention.
	defaultRecoverableDays = 90
	defaultAddr            = "127.0.0.1:0"
	// fakeToken is what Credential hands out; the emulator accepts any token.
	fakeToken = "coffer-keyvault-emulator-token"
)

// Options configures the emulator. The zero value is usable.
type Options struct {
	// Now is the clock for every timestamp the emulator reports; nil means time.Now.
	Now func() time.Time
	// RecoverableDays is the soft-delete retention: scheduledPurgeDate is
	// deletedDate plus this many days, 1 to 90. 0 means 90, Key Vault's
	// default; below 90 the recoveryLevel is "CustomizedRecoverable+Purgeable".
	RecoverableDays int
	// TenantID appears in the challenge's authorization URL; empty means a fixed GUID.
	TenantID string
	// Addr is the listen address; empty means "127.0.0.1:0" so parallel runs never collide.
	Addr string
	// Access, when set, turns on Azure RBAC: only its tokens are accepted,
	// each as its principal, and each call needs a role assignment allowing
	// its data action at the vault or at the secret. Nil accepts any token
	// for anything.
	Access *Access
	// ResourceID is the vault's Azure Resource Manager ID, under which
	// Access.Delegates make role assignments; empty means DefaultResourceID.
	ResourceID string
	// PurgeProtection refuses every purge, as a vault deployed with
	// enablePurgeProtection does: a deleted secret stays recoverable until
	// its scheduled purge date, and the recovery level says so.
	PurgeProtection bool
}

// Server is a running emulator listening on HTTPS.
type Server struct {
	vault     *vault
	srv       *http.Server
	url       string
	caPEM     []byte
	pool      *x509.CertPool
	transport *http.Transport
	done      chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start generates a fresh CA and server certificate, listens on opts.Addr and
// serves the Key Vault secrets API over HTTPS until Close.
func Start(opts Options) (*Server, error) {
	v, err := newVault(opts)
	if err != nil {
		return nil, err
	}
	// A year's validity outlives any run; TLS checks it against the real
	// clock, never Options.Now.
	certs, err := devcert.New("Coffer Key Vault emulator", 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("keyvault emulator: generate certificates: %w", err)
	}
	addr := opts.Addr
	if addr == "" {
		addr = defaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("keyvault emulator: listen on %s: %w", addr, err)
	}
	s := &Server{
		vault: v,
		srv: &http.Server{
			Handler:           v,
			TLSConfig:         certs.ServerTLS(),
			ReadHeaderTimeout: 10 * time.Second,
			// Untrusting clients are an expected case (and a test); their
			// handshake failures are not worth a log line each.
			ErrorLog: log.New(io.Discard, "", 0),
		},
		url:   "https://" + dialableHostPort(ln.Addr()) + "/",
		caPEM: certs.CAPEM,
		pool:  certs.Pool,
		done:  make(chan struct{}),
	}
	s.transport = &http.Transport{
		// A local emulator must never be reached through a proxy from the environment.
		Proxy:               nil,
		TLSClientConfig:     certs.ClientTLS(),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	go func() {
		defer close(s.done)
		// Certificates come from TLSConfig, so no files are named.
		_ = s.srv.ServeTLS(ln, "", "")
	}()
	return s, nil
}

// dialableHostPort turns the listener's address into one a client can dial:
// a wildcard listen address is reached through loopback.
func dialableHostPort(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// URL is the vault URL to hand to azsecrets.NewClient, e.g. "https://127.0.0.1:PORT/".
func (s *Server) URL() string { return s.url }

// CACertPEM is the PEM of the CA that signed the server certificate.
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CertPool is a pool holding only the emulator's CA.
func (s *Server) CertPool() *x509.CertPool { return s.pool.Clone() }

// WriteCACert writes the CA as PEM so other processes can trust the emulator,
// e.g. through SSL_CERT_FILE.
func (s *Server) WriteCACert(path string) error {
	if err := os.WriteFile(path, s.caPEM, 0o644); err != nil {
		return fmt.Errorf("keyvault emulator: write CA certificate: %w", err)
	}
	return nil
}

// ClientOptions returns azsecrets options whose transport trusts the
// emulator's CA. Challenge resource verification is off because the vault's
// host is 127.0.0.1, not a *.vault.azure.net name.
func (s *Server) ClientOptions() *azsecrets.ClientOptions {
	return &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: &http.Client{Transport: s.transport}},
		DisableChallengeResourceVerification: true,
	}
}

// Handler is the secrets API, for embedding in another server. It shares
// state with the running server.
func (s *Server) Handler() http.Handler { return s.vault }

// Close stops the listener, drops open connections and waits for the serving
// goroutine to end. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		err := s.srv.Close()
		<-s.done
		// Idle keep-alive connections of clients built from ClientOptions would
		// otherwise keep their goroutines until IdleConnTimeout.
		s.transport.CloseIdleConnections()
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.closeErr = fmt.Errorf("keyvault emulator: close: %w", err)
		}
	})
	return s.closeErr
}

// Credential returns a static credential for tests and local use. Without
// Options.Access the emulator accepts any bearer token, so no Entra ID is
// involved; with it, use TokenCredential and a token from NewToken.
func Credential() azcore.TokenCredential { return staticCredential{token: fakeToken} }

type staticCredential struct{ token string }

func (c staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}
