package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

const (
	// EnvKeyVaultEmulator set to 1 talks to the local Key Vault emulator:
	// a static bearer token instead of Entra ID, and a loopback address
	// (trusted via SSL_CERT_FILE).
	EnvKeyVaultEmulator = "COFFER_KEYVAULT_EMULATOR"
	// EnvKeyVaultToken is, with the emulator only, the bearer token to
	// present: the emulator maps each token to a principal, so two machines
	// with two tokens are two identities, as two managed identities are in
	// Azure. Empty means the emulator's shared static token.
	EnvKeyVaultToken = "COFFER_KEYVAULT_TOKEN"
	// EnvGrantWait bounds how long registration waits for the machine's
	// role on its new secret (a Go duration, default 15m): the grant is made
	// when the control plane registers the machine, and Azure can take
	// minutes to apply a new role assignment.
	EnvGrantWait = "COFFER_KEYVAULT_GRANT_WAIT"

	// MachineRoleName is the custom role each machine holds on its own
	// passphrase secret (infra/core/security/keyvault.bicep); a deployment
	// names it "Coffer Machine Passphrase (<vault name>)", as custom role
	// names are unique per tenant.
	MachineRoleName = "Coffer Machine Passphrase"

	emulatorStaticToken = "coffer-local-emulator"
	keyVaultScope       = "https://vault.azure.net/.default"
	defaultGrantWait    = 15 * time.Minute
)

// Escrow keeps the machine's passphrase in Key Vault: one secret per
// machine, a new version on each change. The control plane never sees it,
// and in the deployed design each machine's identity holds a role on its
// own secret only (docs/security.md, "Key Vault roles").
type Escrow struct {
	c     *azsecrets.Client
	cred  azcore.TokenCredential
	vault string // the vault URL, for messages
	name  string
	log   *slog.Logger
}

// NewEscrow opens the machine's secret with azidentity's credential chain
// (managed identity on Azure and Arc machines, a service principal from
// AZURE_CLIENT_ID/SECRET/TENANT_ID, or a signed-in developer), or the
// emulator's when COFFER_KEYVAULT_EMULATOR=1.
func NewEscrow(vaultURL, secretName, tenantID string) (*Escrow, error) {
	cred, err := keyVaultCredential(tenantID)
	if err != nil {
		return nil, err
	}
	opts := &azsecrets.ClientOptions{}
	if os.Getenv(EnvKeyVaultEmulator) == "1" {
		opts.DisableChallengeResourceVerification = true
		t, err := emulatorTransport()
		if err != nil {
			return nil, err
		}
		if t != nil {
			opts.Transport = t
		}
	}
	c, err := azsecrets.NewClient(vaultURL, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("Key Vault %s: %w", vaultURL, err)
	}
	return &Escrow{c: c, cred: cred, vault: vaultURL, name: secretName, log: slog.Default()}, nil
}

// emulatorTransport trusts the emulator's CA in SSL_CERT_FILE explicitly,
// or returns nil without it. Go reads SSL_CERT_FILE only on Unix: on
// Windows (and macOS) it verifies with the system's store, which does not
// hold the emulator's CA, so coffer.exe could not reach a local stack,
// under wine or on a developer's Windows machine. The emulator is the only
// server this client talks to, so its CA alone is trusted.
func emulatorTransport() (*http.Client, error) {
	file := os.Getenv("SSL_CERT_FILE")
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read SSL_CERT_FILE to trust the Key Vault emulator: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("SSL_CERT_FILE %s holds no PEM certificate", file)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}, nil
}

// keyVaultCredential is the machine's identity for Key Vault.
func keyVaultCredential(tenantID string) (azcore.TokenCredential, error) {
	if os.Getenv(EnvKeyVaultEmulator) == "1" {
		tok := os.Getenv(EnvKeyVaultToken)
		if tok == "" {
			tok = emulatorStaticToken
		}
		return emulatorCredential{token: tok}, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{TenantID: tenantID})
	if err != nil {
		return nil, fmt.Errorf("no Azure identity to reach Key Vault (use a managed identity, or set AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID): %w", err)
	}
	return cred, nil
}

// KeyVaultPrincipal is the object ID of the identity this machine signs in
// to Key Vault as, for the control plane to assign it its role on the
// machine's secret at registration; "" when it cannot be told (then an
// admin assigns the role, with the command registration logs).
func KeyVaultPrincipal(ctx context.Context, tenantID string) string {
	cred, err := keyVaultCredential(tenantID)
	if err != nil {
		return ""
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{keyVaultScope}, TenantID: tenantID})
	if err != nil {
		slog.Warn("could not get a Key Vault token to learn this machine's object ID; an admin will have to assign its Key Vault role", "err", err)
		return ""
	}
	return TokenObjectID(tok.Token)
}

// Store saves the passphrase as a new version of the machine's secret.
func (e *Escrow) Store(ctx context.Context, passphrase []byte) (version string, err error) {
	version, err = e.set(ctx, passphrase)
	if err != nil {
		return "", e.explain(ctx, "escrow the passphrase in Key Vault as", err)
	}
	return version, nil
}

func (e *Escrow) set(ctx context.Context, passphrase []byte) (string, error) {
	v := string(passphrase)
	ct := "text/plain; coffer passphrase"
	resp, err := e.c.SetSecret(ctx, e.name, azsecrets.SetSecretParameters{Value: &v, ContentType: &ct}, nil)
	if err != nil || resp.ID == nil {
		return "", err
	}
	return resp.ID.Version(), nil
}

// StoreWhenGranted is Store for a machine that has just registered: its
// role on the new secret may not be in force yet, so a refusal (403) is
// retried, with backoff, for up to COFFER_KEYVAULT_GRANT_WAIT. The first
// refusal logs what an admin can do if no delegate makes the grant.
func (e *Escrow) StoreWhenGranted(ctx context.Context, passphrase []byte) (string, error) {
	wait := defaultGrantWait
	if s := os.Getenv(EnvGrantWait); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return "", fmt.Errorf("%s=%q is not a duration such as 15m", EnvGrantWait, s)
		}
		wait = d
	}
	deadline := time.Now().Add(wait)
	backoff := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		version, err := e.set(ctx, passphrase)
		if err == nil {
			return version, nil
		}
		if !isForbidden(err) || !time.Now().Add(backoff).Before(deadline) {
			return "", e.explain(ctx, "escrow the passphrase in Key Vault as", err)
		}
		if attempt == 0 {
			oid := e.principal(ctx)
			e.log.Warn("Key Vault does not yet let this machine write its passphrase secret; waiting for the role assignment made at registration",
				"secret", e.name, "machineObjectId", oid, "waitUpTo", wait.String(),
				"adminCanGrant", grantCommand(e.vault, e.name, oid))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("escrow the passphrase as %s: %w", e.name, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// Fetch returns the current passphrase, or a given version.
func (e *Escrow) Fetch(ctx context.Context, version string) ([]byte, error) {
	resp, err := e.c.GetSecret(ctx, e.name, version, nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("Key Vault has no passphrase %s for this machine; register again or restore the secret", e.name)
	}
	if err != nil {
		return nil, e.explain(ctx, "fetch from Key Vault the passphrase", err)
	}
	if resp.Value == nil {
		return nil, fmt.Errorf("Key Vault secret %s is empty", e.name)
	}
	return []byte(*resp.Value), nil
}

// explain turns a Key Vault refusal into what to do about it: a machine
// holds the "Coffer Machine Passphrase" role on its own secret only.
func (e *Escrow) explain(ctx context.Context, doing string, err error) error {
	if !isForbidden(err) {
		return fmt.Errorf("%s %s: %w", doing, e.name, err)
	}
	oid := e.principal(ctx)
	return fmt.Errorf("%s %s: Key Vault refused this machine's identity (object ID %s): each machine holds the %q role on its own secret only, "+
		"granted when it registers; if this is the machine's own secret, an admin can grant it with `%s`; another machine's passphrase "+
		"is never readable here (for a restore from another machine, give that machine's passphrase instead): %w",
		doing, e.name, oid, MachineRoleName, grantCommand(e.vault, e.name, oid), err)
}

func isForbidden(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// principal is the object ID of the identity the credential signs in as,
// read from the oid claim of its Key Vault token; "unknown" when the token
// is not a JWT (it is only for messages, never for a decision).
func (e *Escrow) principal(ctx context.Context) string {
	tok, err := e.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{keyVaultScope}})
	if err != nil {
		return "unknown"
	}
	if oid := TokenObjectID(tok.Token); oid != "" {
		return oid
	}
	return "unknown"
}

// TokenObjectID returns the oid claim of a JWT access token without
// verifying it (the caller got the token for itself), or "" if there is
// none.
func TokenObjectID(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var c struct {
		OID string `json:"oid"`
	}
	if json.Unmarshal(b, &c) != nil || !isGUID(c.OID) {
		return ""
	}
	return c.OID
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f', r >= 'A' && r <= 'F':
		default:
			return false
		}
	}
	return true
}

// grantCommand is the Azure CLI command that gives a machine's identity its
// role on its own secret, for an admin to run when no delegate does it.
func grantCommand(vaultURL, secret, oid string) string {
	name := "<vault>"
	if u, err := url.Parse(vaultURL); err == nil && u.Hostname() != "" && net.ParseIP(u.Hostname()) == nil {
		name, _, _ = strings.Cut(u.Hostname(), ".")
	}
	return fmt.Sprintf(`az role assignment create --role "%s (%s)" --assignee-object-id %s --assignee-principal-type ServicePrincipal --scope "$(az keyvault show --name %s --query id -o tsv)/secrets/%s"`,
		MachineRoleName, name, oid, name, secret)
}

type emulatorCredential struct{ token string }

func (c emulatorCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}
