package keyvault

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// DefaultResourceID is the vault's Azure Resource Manager ID when
// Options.ResourceID is empty.
const DefaultResourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-coffer-local/providers/Microsoft.KeyVault/vaults/coffer-local"

const roleAssignmentsSegment = "/providers/Microsoft.Authorization/roleAssignments/"

// Delegate is a principal that holds Role Based Access Control
// Administrator on the vault under an ABAC condition of Azure's "constrain
// roles and principal types" form, as Coffer's control plane does
// (infra/core/security/keyvault.bicep):
//
//	write:  RoleDefinitionId ∈ Roles ∧ PrincipalType ∈ PrincipalTypes ∧ PrincipalId ∉ NotPrincipals
//	delete: RoleDefinitionId ∈ Roles
//
// It reaches the emulator as Azure Resource Manager would be reached: PUT
// and DELETE of <vault resource ID>[/secrets/<name>]/providers/
// Microsoft.Authorization/roleAssignments/<GUID> on the emulator's URL.
type Delegate struct {
	PrincipalID    string   `json:"principalId"`
	Roles          []string `json:"roles"`
	PrincipalTypes []string `json:"principalTypes"`
	NotPrincipals  []string `json:"notPrincipals,omitempty"`
}

// armError is Azure Resource Manager's error document.
func armError(status int, code, message string) response {
	return response{status: status, body: apiError{Error: apiErrorBody{Code: code, Message: message}}}
}

type roleAssignmentJSON struct {
	ID         string                   `json:"id,omitempty"`
	Name       string                   `json:"name,omitempty"`
	Type       string                   `json:"type,omitempty"`
	Properties roleAssignmentProperties `json:"properties"`
}

type roleAssignmentProperties struct {
	RoleDefinitionID string `json:"roleDefinitionId"`
	PrincipalID      string `json:"principalId"`
	PrincipalType    string `json:"principalType,omitempty"`
	Scope            string `json:"scope,omitempty"`
	Condition        string `json:"condition,omitempty"`
}

// isARM reports whether a path is a role-assignment request rather than
// the secrets API, which never has /providers/ in it.
func isARM(path string) bool { return lastIndexFold(path, roleAssignmentsSegment) >= 0 }

// lastIndexFold is strings.LastIndex ignoring ASCII and Unicode case, with
// an index into s itself (lower-casing first can change byte lengths).
func lastIndexFold(s, sub string) int {
	for i := len(s) - len(sub); i >= 0; i-- {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// serveARM creates and deletes role assignments under the vault for a
// caller allowed to as a Delegate. The caller is already authenticated.
func (v *vault) serveARM(caller string, r *http.Request, body []byte) response {
	path, err := url.PathUnescape(r.URL.EscapedPath())
	if err != nil {
		return armError(http.StatusBadRequest, "InvalidRequestUri", "The request URI is not valid.")
	}
	i := lastIndexFold(path, roleAssignmentsSegment)
	if i < 0 {
		return armError(http.StatusBadRequest, "InvalidRequestUri", "The request URI is not a role assignment.")
	}
	scopeID, name := path[:i], path[i+len(roleAssignmentsSegment):]
	if !guidPattern.MatchString(name) {
		return armError(http.StatusBadRequest, "InvalidRoleAssignmentId", "The role assignment ID '"+name+"' is not valid. The role assignment ID must be a GUID.")
	}
	if r.URL.Query().Get("api-version") == "" {
		return armError(http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
	}
	scope, ok := v.vaultScope(scopeID)
	if !ok {
		return armError(http.StatusForbidden, "AuthorizationFailed", authorizationFailed(caller, "Microsoft.Authorization/roleAssignments/"+strings.ToLower(r.Method), scopeID))
	}
	switch r.Method {
	case http.MethodPut:
		return v.putRoleAssignment(caller, scopeID, scope, strings.ToLower(name), body)
	case http.MethodDelete:
		return v.deleteRoleAssignment(caller, scopeID, strings.ToLower(name))
	}
	return armError(http.StatusMethodNotAllowed, "MethodNotAllowed", "The method "+r.Method+" is not allowed on role assignments here; use PUT or DELETE.")
}

// vaultScope maps an ARM scope to the emulator's: the vault is "/", one of
// its secrets "/secrets/<name>". Anything else is outside this vault.
func (v *vault) vaultScope(id string) (string, bool) {
	rest, ok := strings.CutPrefix(strings.ToLower(id), strings.ToLower(v.resourceID))
	switch {
	case !ok:
		return "", false
	case rest == "":
		return "/", true
	}
	s, err := normalizeScope(rest)
	if err != nil {
		return "", false
	}
	return s, true
}

func authorizationFailed(caller, action, scope string) string {
	return "The client '" + caller + "' with object id '" + caller + "' does not have authorization or an ABAC condition not fulfilled to perform action '" +
		action + "' over scope '" + scope + "' or the scope is invalid. If access was recently granted, please refresh your credentials."
}

func (v *vault) putRoleAssignment(caller, scopeID, scope, name string, body []byte) response {
	var in roleAssignmentJSON
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&in); err != nil {
		return armError(http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: "+err.Error())
	}
	p := in.Properties
	roleID := p.RoleDefinitionID[strings.LastIndex(p.RoleDefinitionID, "/")+1:]
	if !guidPattern.MatchString(roleID) || !strings.Contains(strings.ToLower(p.RoleDefinitionID), "/providers/microsoft.authorization/roledefinitions/") {
		return armError(http.StatusBadRequest, "InvalidRoleDefinitionId", "The role definition ID '"+p.RoleDefinitionID+"' is not valid.")
	}
	if !guidPattern.MatchString(p.PrincipalID) {
		return armError(http.StatusBadRequest, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment.")
	}
	if p.Condition != "" {
		// The delegate's own condition is the point; assignments it makes
		// carry none, and Key Vault data actions take no conditions.
		return armError(http.StatusBadRequest, "InvalidCondition", "Conditions are not supported for role assignments with Key Vault data actions.")
	}
	z := v.authz
	z.mu.Lock()
	defer z.mu.Unlock()
	role, known := z.roles[strings.ToLower(roleID)]
	if !known {
		return armError(http.StatusBadRequest, "RoleDefinitionDoesNotExist", "The specified role definition with ID '"+roleID+"' does not exist.")
	}
	if !z.delegateMayWrite(caller, role.ID, p.PrincipalType, p.PrincipalID) {
		return armError(http.StatusForbidden, "AuthorizationFailed", authorizationFailed(caller, "Microsoft.Authorization/roleAssignments/write", scopeID))
	}
	ra := RoleAssignment{PrincipalID: strings.ToLower(p.PrincipalID), RoleID: strings.ToLower(role.ID), Scope: scope}
	if old, ok := z.named[name]; ok && old != ra {
		return armError(http.StatusBadRequest, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
	}
	if _, ok := z.named[name]; !ok {
		if slices.Contains(z.assignments, ra) {
			return armError(http.StatusConflict, "RoleAssignmentExists", "The role assignment already exists.")
		}
		z.assignments = append(z.assignments, ra)
		z.named[name] = ra
	}
	return response{status: http.StatusCreated, body: roleAssignmentJSON{
		ID: scopeID + roleAssignmentsSegment + name, Name: name, Type: "Microsoft.Authorization/roleAssignments",
		Properties: roleAssignmentProperties{RoleDefinitionID: p.RoleDefinitionID, PrincipalID: ra.PrincipalID, PrincipalType: p.PrincipalType, Scope: scopeID},
	}}
}

func (v *vault) deleteRoleAssignment(caller, scopeID, name string) response {
	z := v.authz
	z.mu.Lock()
	defer z.mu.Unlock()
	ra, ok := z.named[name]
	if !ok {
		// ARM answers 204 for an assignment that is not there.
		if !z.isDelegate(caller) {
			return armError(http.StatusForbidden, "AuthorizationFailed", authorizationFailed(caller, "Microsoft.Authorization/roleAssignments/delete", scopeID))
		}
		return response{status: http.StatusNoContent}
	}
	if !z.delegateMayDelete(caller, ra.RoleID) {
		return armError(http.StatusForbidden, "AuthorizationFailed", authorizationFailed(caller, "Microsoft.Authorization/roleAssignments/delete", scopeID))
	}
	delete(z.named, name)
	z.assignments = slices.DeleteFunc(z.assignments, func(x RoleAssignment) bool { return x == ra })
	return response{status: http.StatusOK, body: roleAssignmentJSON{
		ID: scopeID + roleAssignmentsSegment + name, Name: name, Type: "Microsoft.Authorization/roleAssignments",
		Properties: roleAssignmentProperties{RoleDefinitionID: "/providers/Microsoft.Authorization/roleDefinitions/" + ra.RoleID, PrincipalID: ra.PrincipalID, Scope: scopeID},
	}}
}

// Callers hold z.mu.
func (z *authz) isDelegate(caller string) bool {
	return slices.ContainsFunc(z.delegates, func(d Delegate) bool { return strings.EqualFold(d.PrincipalID, caller) })
}

func (z *authz) delegateMayWrite(caller, roleID, principalType, principalID string) bool {
	for _, d := range z.delegates {
		if strings.EqualFold(d.PrincipalID, caller) &&
			containsFold(d.Roles, roleID) && containsFold(d.PrincipalTypes, principalType) && !containsFold(d.NotPrincipals, principalID) {
			return true
		}
	}
	return false
}

func (z *authz) delegateMayDelete(caller, roleID string) bool {
	for _, d := range z.delegates {
		if strings.EqualFold(d.PrincipalID, caller) && containsFold(d.Roles, roleID) {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

func checkDelegate(d Delegate) error {
	for _, id := range append(append([]string{d.PrincipalID}, d.Roles...), d.NotPrincipals...) {
		if !guidPattern.MatchString(id) {
			return errors.New("keyvault emulator: delegate: " + id + " is not a GUID")
		}
	}
	if len(d.Roles) == 0 || len(d.PrincipalTypes) == 0 {
		return errors.New("keyvault emulator: delegate " + d.PrincipalID + ": give the roles and principal types its condition allows")
	}
	return nil
}
