package keyvault

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// Key Vault's data actions for secrets, as Azure RBAC names them. Each
// operation of the secrets API needs exactly one of them.
const (
	ActionGetSecret    = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
	ActionSetSecret    = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
	ActionReadMetadata = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
	ActionUpdate       = "Microsoft.KeyVault/vaults/secrets/update/action"
	ActionDelete       = "Microsoft.KeyVault/vaults/secrets/delete"
	ActionBackup       = "Microsoft.KeyVault/vaults/secrets/backup/action"
	ActionRestore      = "Microsoft.KeyVault/vaults/secrets/restore/action"
	ActionRecover      = "Microsoft.KeyVault/vaults/secrets/recover/action"
	ActionPurge        = "Microsoft.KeyVault/vaults/secrets/purge/action"
)

// Built-in role definition IDs (the same in every tenant) and the ID this
// emulator gives Coffer's custom role. A deployment's custom role has its
// own GUID; the data actions are what must match (infra's consistency test
// checks the Bicep against MachinePassphraseDataActions).
const (
	RoleSecretsOfficer    = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
	RoleSecretsUser       = "4633458b-17de-408a-b874-0445c86b69e6"
	RoleMachinePassphrase = "c0ffe500-7a55-4f2a-8000-000000000001"
)

// MachinePassphraseDataActions is Coffer's custom role "Coffer Machine
// Passphrase": what one machine may do to its own secret, and nothing more.
// Assigned at the scope of that one secret, it lets the machine escrow new
// versions and read them back; it cannot delete, purge, back up, restore or
// change attributes, and it reaches no other secret.
var MachinePassphraseDataActions = []string{ActionGetSecret, ActionSetSecret, ActionReadMetadata}

// RoleDefinition is an Azure role as far as Key Vault's data plane cares:
// the data actions it allows, minus those it excludes. An action may end in
// "*" to match every action under it, as Azure role definitions allow.
type RoleDefinition struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions,omitempty"`
}

// BuiltInRoles are the role definitions every emulator knows without
// configuration: the two built-in secrets roles and Coffer's custom role.
func BuiltInRoles() []RoleDefinition {
	return []RoleDefinition{
		{ID: RoleSecretsOfficer, Name: "Key Vault Secrets Officer", DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"}},
		{ID: RoleSecretsUser, Name: "Key Vault Secrets User", DataActions: []string{ActionGetSecret, ActionReadMetadata}},
		{ID: RoleMachinePassphrase, Name: "Coffer Machine Passphrase", DataActions: slices.Clone(MachinePassphraseDataActions)},
	}
}

// RoleAssignment gives a principal a role at a scope: "/" is the whole
// vault, "/secrets/<name>" one secret (all its versions, and its deleted
// state), as Azure scopes an assignment to
// <vault resource ID>/secrets/<name>.
type RoleAssignment struct {
	PrincipalID string `json:"principalId"`
	RoleID      string `json:"roleDefinitionId"`
	Scope       string `json:"scope"`
}

// Access turns on Azure RBAC in the emulator. Without it (Options.Access
// nil) any bearer token may do anything, which is what a test that is not
// about authorization wants.
type Access struct {
	// Principals maps each accepted bearer token to the object ID of the
	// principal it stands for. Any other token is refused with 401, as Entra
	// ID tokens that Key Vault cannot validate are.
	Principals map[string]string `json:"principals"`
	// Roles adds role definitions to BuiltInRoles.
	Roles []RoleDefinition `json:"roles,omitempty"`
	// Assignments are the role assignments in force at start.
	Assignments []RoleAssignment `json:"assignments"`
	// Delegates may create and delete role assignments under the vault
	// through the Azure Resource Manager API, within their conditions.
	Delegates []Delegate `json:"delegates,omitempty"`
}

// ParseAccess reads an Access from JSON, refusing unknown fields so a typo
// in a configuration file cannot silently grant or deny.
func ParseAccess(b []byte) (*Access, error) {
	var a Access
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&a); err != nil {
		return nil, fmt.Errorf("keyvault emulator: access configuration: %w", err)
	}
	return &a, nil
}

// authz is the emulator's RBAC state; it has its own lock so tests can add
// principals and assignments while requests are served.
type authz struct {
	mu          sync.RWMutex
	principals  map[string]string
	roles       map[string]RoleDefinition // by lower-cased ID
	assignments []RoleAssignment
	named       map[string]RoleAssignment // made through ARM, by lower-cased assignment GUID
	delegates   []Delegate
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func newAuthz(a *Access) (*authz, error) {
	z := &authz{principals: map[string]string{}, roles: map[string]RoleDefinition{}, named: map[string]RoleAssignment{}}
	for _, d := range a.Delegates {
		if err := checkDelegate(d); err != nil {
			return nil, err
		}
		z.delegates = append(z.delegates, d)
	}
	for _, r := range append(BuiltInRoles(), a.Roles...) {
		if !guidPattern.MatchString(r.ID) {
			return nil, fmt.Errorf("keyvault emulator: role %q: id %q is not a GUID", r.Name, r.ID)
		}
		z.roles[strings.ToLower(r.ID)] = r
	}
	for tok, oid := range a.Principals {
		if err := z.addPrincipal(tok, oid); err != nil {
			return nil, err
		}
	}
	for _, ra := range a.Assignments {
		if err := z.assign(ra); err != nil {
			return nil, err
		}
	}
	return z, nil
}

func (z *authz) addPrincipal(token, objectID string) error {
	if !hasBearerToken([]string{"Bearer " + token}) {
		return fmt.Errorf("keyvault emulator: principal %s: the token is not a valid bearer token (RFC 6750 token68)", objectID)
	}
	if !guidPattern.MatchString(objectID) {
		return fmt.Errorf("keyvault emulator: principal object ID %q is not a GUID", objectID)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.principals[token] = strings.ToLower(objectID)
	return nil
}

// normalizeScope accepts "/" or "/secrets/<name>" and returns it lower-cased
// (Key Vault names are case-insensitive).
func normalizeScope(scope string) (string, error) {
	if scope == "/" {
		return scope, nil
	}
	if name, ok := strings.CutPrefix(scope, "/secrets/"); ok && secretName.MatchString(name) {
		return "/secrets/" + strings.ToLower(name), nil
	}
	return "", fmt.Errorf("keyvault emulator: scope %q must be \"/\" (the vault) or \"/secrets/<name>\"", scope)
}

func (z *authz) assign(ra RoleAssignment) error {
	scope, err := normalizeScope(ra.Scope)
	if err != nil {
		return err
	}
	if !guidPattern.MatchString(ra.PrincipalID) {
		return fmt.Errorf("keyvault emulator: assignment principal %q is not a GUID", ra.PrincipalID)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.roles[strings.ToLower(ra.RoleID)]; !ok {
		return fmt.Errorf("keyvault emulator: assignment of unknown role %q (define it in Access.Roles)", ra.RoleID)
	}
	ra = RoleAssignment{PrincipalID: strings.ToLower(ra.PrincipalID), RoleID: strings.ToLower(ra.RoleID), Scope: scope}
	if !slices.Contains(z.assignments, ra) {
		z.assignments = append(z.assignments, ra)
	}
	return nil
}

func (z *authz) unassign(ra RoleAssignment) bool {
	scope, err := normalizeScope(ra.Scope)
	if err != nil {
		return false
	}
	ra = RoleAssignment{PrincipalID: strings.ToLower(ra.PrincipalID), RoleID: strings.ToLower(ra.RoleID), Scope: scope}
	z.mu.Lock()
	defer z.mu.Unlock()
	n := len(z.assignments)
	z.assignments = slices.DeleteFunc(z.assignments, func(x RoleAssignment) bool { return x == ra })
	maps.DeleteFunc(z.named, func(_ string, x RoleAssignment) bool { return x == ra })
	return len(z.assignments) != n
}

// principal returns the object ID a token stands for.
func (z *authz) principal(token string) (string, bool) {
	z.mu.RLock()
	defer z.mu.RUnlock()
	oid, ok := z.principals[token]
	return oid, ok
}

// allowed reports whether the principal holds a role allowing action at
// scope: an assignment at the vault covers every secret, one at a secret
// covers only that secret.
func (z *authz) allowed(oid, action, scope string) bool {
	scope = strings.ToLower(scope)
	z.mu.RLock()
	defer z.mu.RUnlock()
	for _, ra := range z.assignments {
		if ra.PrincipalID != oid || (ra.Scope != "/" && ra.Scope != scope) {
			continue
		}
		r := z.roles[ra.RoleID]
		if matchesAny(r.DataActions, action) && !matchesAny(r.NotDataActions, action) {
			return true
		}
	}
	return false
}

func matchesAny(patterns []string, action string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if len(action) >= len(prefix) && strings.EqualFold(action[:len(prefix)], prefix) {
				return true
			}
		} else if strings.EqualFold(p, action) {
			return true
		}
	}
	return false
}

// bearerToken returns the token of a header hasBearerToken accepted.
func bearerToken(header string) string {
	_, tok, _ := strings.Cut(header, " ")
	return tok
}

// forbiddenByRBAC is Key Vault's answer when no role assignment allows the
// call: 403 Forbidden with inner code ForbiddenByRbac, naming the caller,
// the action and the resource, as the service does.
func forbiddenByRBAC(oid, action, scope string) response {
	return response{status: http.StatusForbidden, body: apiError{Error: apiErrorBody{
		Code: "Forbidden",
		Message: "Caller is not authorized to perform action on resource.\r\n" +
			"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n" +
			"Caller: oid=" + oid + "\r\n" +
			"Action: '" + action + "'\r\n" +
			"Resource: '" + scope + "'\r\n" +
			"Assignment: (not found)\r\n" +
			"DecisionReason: 'DeniedWithNoValidRBAC'\r\n" +
			"Vault: emulator;location=local",
		InnerError: &apiInnerError{Code: "ForbiddenByRbac"},
	}}}
}

// purgeProtected is Key Vault's answer to a purge in a vault with purge
// protection: nobody may purge, whatever their role.
func purgeProtected() response {
	return errorResponse(http.StatusForbidden, "Forbidden",
		`Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.`+"\r\nVault: emulator;location=local")
}

// NewToken makes a fresh bearer token for a principal and registers it, so
// a test or a child process can act as that principal. The token is shaped
// like an Entra ID access token (three base64url parts, the middle one JSON
// claims with aud, tid and oid) so code that reads its own object ID from
// its token works here too; the emulator itself trusts only the exact token
// it issued (the third part is 32 random bytes), never the claims.
func (s *Server) NewToken(objectID string) (string, error) {
	if s.vault.authz == nil {
		return "", fmt.Errorf("keyvault emulator: NewToken needs Options.Access (RBAC is off, so every token is accepted)")
	}
	if !guidPattern.MatchString(objectID) {
		return "", fmt.Errorf("keyvault emulator: principal object ID %q is not a GUID", objectID)
	}
	claims, err := json.Marshal(map[string]string{"aud": keyVaultResource, "tid": s.vault.tenant, "oid": strings.ToLower(objectID)})
	if err != nil {
		return "", fmt.Errorf("keyvault emulator: token claims: %w", err)
	}
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("keyvault emulator: token: %w", err)
	}
	enc := base64.RawURLEncoding
	tok := enc.EncodeToString([]byte(`{"typ":"JWT","alg":"none"}`)) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(nonce[:])
	if err := s.vault.authz.addPrincipal(tok, objectID); err != nil {
		return "", err
	}
	return tok, nil
}

// Assign adds a role assignment while the emulator runs, as a role
// assignment made in Azure (by an admin, or by Coffer's registration
// delegate) takes effect.
func (s *Server) Assign(ra RoleAssignment) error {
	if s.vault.authz == nil {
		return fmt.Errorf("keyvault emulator: Assign needs Options.Access (RBAC is off, so every token may do anything)")
	}
	return s.vault.authz.assign(ra)
}

// Unassign removes a role assignment; it reports whether one was removed.
func (s *Server) Unassign(ra RoleAssignment) bool {
	return s.vault.authz != nil && s.vault.authz.unassign(ra)
}

// TokenCredential is a credential that always presents token, for an
// azsecrets client acting as the principal NewToken made it for.
func TokenCredential(token string) azcore.TokenCredential { return staticCredential{token: token} }
