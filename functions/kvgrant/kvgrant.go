// Package kvgrant makes the control plane the registration delegate of the
// passphrase vault. When a machine registers, it assigns the machine's Key
// Vault identity the Coffer Machine Passphrase role at the scope of that
// machine's secret, through Azure Resource Manager. Its own role there
// (Role Based Access Control Administrator under an ABAC condition,
// infra/core/security/keyvault.bicep) lets it assign that role only, only
// to service principals, never to itself; it holds no Key Vault data
// action, so it never reads a passphrase.
package kvgrant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

const (
	// DefaultEndpoint is Azure Resource Manager in the public cloud.
	DefaultEndpoint = "https://management.azure.com"
	armScope        = "https://management.azure.com/.default"
	apiVersion      = "2022-04-01"
)

var (
	guidRE    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	vaultIDRE = regexp.MustCompile(`(?i)^/subscriptions/([0-9a-f-]{36})/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[0-9A-Za-z-]{3,24}$`)
	secretRE  = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
)

// Options configure a Granter.
type Options struct {
	// VaultResourceID is the passphrase vault's resource ID,
	// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>.
	VaultResourceID string
	// RoleID is the GUID of the machine passphrase role definition.
	RoleID string
	// Endpoint is Resource Manager's URL; empty means DefaultEndpoint. The
	// local Key Vault emulator serves the same calls on its own URL.
	Endpoint string
	// Credential is the control plane's identity.
	Credential azcore.TokenCredential
	// Transport replaces the HTTP client, e.g. to trust a local CA.
	Transport policy.Transporter
}

// Granter assigns machines their role on their own passphrase secret.
type Granter struct {
	pl       runtime.Pipeline
	endpoint string
	vaultID  string
	roleDef  string // the full role definition ID
}

// New checks the options and builds the client.
func New(o Options) (*Granter, error) {
	m := vaultIDRE.FindStringSubmatch(o.VaultResourceID)
	if m == nil {
		return nil, fmt.Errorf("kvgrant: %q is not a Key Vault resource ID (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>)", o.VaultResourceID)
	}
	if !guidRE.MatchString(o.RoleID) {
		return nil, fmt.Errorf("kvgrant: the machine passphrase role ID %q is not a GUID (azd env get-value KEYVAULT_MACHINE_ROLE_ID)", o.RoleID)
	}
	if o.Credential == nil {
		return nil, errors.New("kvgrant: no credential for Azure Resource Manager")
	}
	endpoint := strings.TrimSuffix(o.Endpoint, "/")
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if !strings.HasPrefix(endpoint, "https://") {
		return nil, fmt.Errorf("kvgrant: the Resource Manager endpoint %q must be https://", endpoint)
	}
	pl := runtime.NewPipeline("coffer-kvgrant", "v1",
		runtime.PipelineOptions{PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(o.Credential, []string{armScope}, nil)}},
		&policy.ClientOptions{Transport: o.Transport})
	return &Granter{
		pl:       pl,
		endpoint: endpoint,
		vaultID:  o.VaultResourceID,
		roleDef:  "/subscriptions/" + m[1] + "/providers/Microsoft.Authorization/roleDefinitions/" + strings.ToLower(o.RoleID),
	}, nil
}

// Grant assigns the machine passphrase role on secret to the service
// principal principalID. The assignment's name is derived from the scope
// and principal, so a retried registration makes the same assignment, and
// one that already exists is success.
func (g *Granter) Grant(ctx context.Context, secret, principalID string) error {
	req, err := g.assignmentRequest(ctx, http.MethodPut, secret, principalID)
	if err != nil {
		return err
	}
	body := map[string]any{"properties": map[string]string{
		"roleDefinitionId": g.roleDef,
		"principalId":      principalID,
		"principalType":    "ServicePrincipal",
	}}
	if err := runtime.MarshalAsJSON(req, body); err != nil {
		return fmt.Errorf("kvgrant: %w", err)
	}
	resp, err := g.pl.Do(req)
	if err != nil {
		return fmt.Errorf("assign machine principal %s its role on Key Vault secret %s: %w", principalID, secret, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated:
		return nil
	case resp.StatusCode == http.StatusConflict:
		// The same grant under another name (an earlier attempt, or an
		// admin's by hand) is as good.
		re := runtime.NewResponseError(resp)
		if strings.EqualFold(responseCode(re), "RoleAssignmentExists") {
			return nil
		}
		return fmt.Errorf("assign machine principal %s its role on Key Vault secret %s: %w", principalID, secret, re)
	}
	return fmt.Errorf("assign machine principal %s its role on Key Vault secret %s (the control plane's identity needs its conditioned Role Based Access Control Administrator role on the vault; see infra/core/security/keyvault.bicep): %w",
		principalID, secret, runtime.NewResponseError(resp))
}

// Revoke removes the assignment Grant made for the same secret and
// principal: a purged machine's identity keeps no role on its secret. One
// that is already gone is success.
func (g *Granter) Revoke(ctx context.Context, secret, principalID string) error {
	req, err := g.assignmentRequest(ctx, http.MethodDelete, secret, principalID)
	if err != nil {
		return err
	}
	resp, err := g.pl.Do(req)
	if err != nil {
		return fmt.Errorf("remove machine principal %s's role on Key Vault secret %s: %w", principalID, secret, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusNotFound:
		return nil
	}
	return fmt.Errorf("remove machine principal %s's role on Key Vault secret %s (the control plane's identity needs its conditioned Role Based Access Control Administrator role on the vault; see infra/core/security/keyvault.bicep): %w",
		principalID, secret, runtime.NewResponseError(resp))
}

// assignmentRequest is a Resource Manager request on the assignment of
// the machine role on secret to principalID, under the name derived from
// them, so that Grant and Revoke always name the same assignment.
func (g *Granter) assignmentRequest(ctx context.Context, method, secret, principalID string) (*policy.Request, error) {
	if !secretRE.MatchString(secret) {
		return nil, fmt.Errorf("kvgrant: %q is not a Key Vault secret name", secret)
	}
	if !guidRE.MatchString(principalID) {
		return nil, fmt.Errorf("kvgrant: the machine's Key Vault principal %q is not an object ID (a GUID)", principalID)
	}
	scope := g.vaultID + "/secrets/" + secret
	name := assignmentName(scope, strings.ToLower(principalID), g.roleDef)
	req, err := runtime.NewRequest(ctx, method, g.endpoint+scope+"/providers/Microsoft.Authorization/roleAssignments/"+name+"?api-version="+apiVersion)
	if err != nil {
		return nil, fmt.Errorf("kvgrant: %w", err)
	}
	return req, nil
}

func responseCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// assignmentName is a version-5-style GUID from the assignment's identity,
// as Bicep's guid() makes one, so the same grant always has the same name.
func assignmentName(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
