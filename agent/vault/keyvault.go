package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// EnvKeyVaultEmulator set to 1 talks to the local Key Vault emulator:
// any bearer token, a loopback address (trusted via SSL_CERT_FILE).
const EnvKeyVaultEmulator = "COFFER_KEYVAULT_EMULATOR"

// Escrow keeps the machine's passphrase in Key Vault: one secret per
// machine, a new version on each change. The control plane never sees it.
type Escrow struct {
	c    *azsecrets.Client
	name string
}

// NewEscrow opens the machine's secret with azidentity's credential chain
// (managed identity on Azure and Arc machines, a service principal from
// AZURE_CLIENT_ID/SECRET/TENANT_ID, or a signed-in developer), or the
// emulator's when COFFER_KEYVAULT_EMULATOR=1.
func NewEscrow(vaultURL, secretName, tenantID string) (*Escrow, error) {
	var (
		cred azcore.TokenCredential
		opts = &azsecrets.ClientOptions{}
		err  error
	)
	if os.Getenv(EnvKeyVaultEmulator) == "1" {
		cred = emulatorCredential{}
		opts.DisableChallengeResourceVerification = true
	} else {
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{TenantID: tenantID})
		if err != nil {
			return nil, fmt.Errorf("no Azure identity to reach Key Vault (use a managed identity, or set AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID): %w", err)
		}
	}
	c, err := azsecrets.NewClient(vaultURL, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("Key Vault %s: %w", vaultURL, err)
	}
	return &Escrow{c: c, name: secretName}, nil
}

// Store saves the passphrase as a new version of the machine's secret.
func (e *Escrow) Store(ctx context.Context, passphrase []byte) (version string, err error) {
	v := string(passphrase)
	ct := "text/plain; coffer passphrase"
	resp, err := e.c.SetSecret(ctx, e.name, azsecrets.SetSecretParameters{Value: &v, ContentType: &ct}, nil)
	if err != nil {
		return "", fmt.Errorf("escrow the passphrase in Key Vault as %s (the machine's identity needs the Key Vault Secrets Officer role): %w", e.name, err)
	}
	if resp.ID != nil {
		version = resp.ID.Version()
	}
	return version, nil
}

// Fetch returns the current passphrase, or a given version.
func (e *Escrow) Fetch(ctx context.Context, version string) ([]byte, error) {
	resp, err := e.c.GetSecret(ctx, e.name, version, nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == 404 {
		return nil, fmt.Errorf("Key Vault has no passphrase %s for this machine; register again or restore the secret", e.name)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch the passphrase %s from Key Vault: %w", e.name, err)
	}
	if resp.Value == nil {
		return nil, fmt.Errorf("Key Vault secret %s is empty", e.name)
	}
	return []byte(*resp.Value), nil
}

type emulatorCredential struct{}

func (emulatorCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "coffer-local-emulator", ExpiresOn: time.Now().Add(time.Hour)}, nil
}
