package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/functions/kvgrant"
)

// keyVaultGranter makes the control plane the passphrase vault's
// registration delegate when the deployment names the vault and the role
// (COFFER_KEYVAULT_RESOURCE_ID, COFFER_KEYVAULT_MACHINE_ROLE_ID); nil
// otherwise, and an admin assigns each machine its role. In Azure it signs
// in with the managed identity (cred, or one made here when storage and
// Service Bus use connection strings); against the local Key Vault emulator
// with COFFER_ARM_TOKEN, trusting the CA in SSL_CERT_FILE.
func keyVaultGranter(cfg config.Config, cred azcore.TokenCredential) (*kvgrant.Granter, error) {
	if cfg.KeyVaultResourceID == "" {
		return nil, nil
	}
	o := kvgrant.Options{VaultResourceID: cfg.KeyVaultResourceID, RoleID: cfg.KeyVaultMachineRoleID, Endpoint: cfg.ARM.Endpoint, Credential: cred}
	if cfg.ARM.Token != "" {
		o.Credential = staticToken(cfg.ARM.Token)
	}
	if o.Credential == nil {
		var err error
		if cfg.ClientID != "" {
			o.Credential, err = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(cfg.ClientID)})
		} else {
			o.Credential, err = azidentity.NewDefaultAzureCredential(nil)
		}
		if err != nil {
			return nil, fmt.Errorf("managed identity for Key Vault role assignments: %w", err)
		}
	}
	if cfg.ARM.CAFile != "" {
		pem, err := os.ReadFile(cfg.ARM.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read SSL_CERT_FILE to trust %s: %w", cfg.ARM.Endpoint, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("SSL_CERT_FILE %s holds no PEM certificate", cfg.ARM.CAFile)
		}
		// A local endpoint is never reached through a proxy from the environment.
		o.Transport = &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	return kvgrant.New(o)
}

// staticToken is the local emulator's bearer token for the delegate.
type staticToken string

func (t staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(time.Hour)}, nil
}
