package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

// The principal a registering agent names for its Key Vault role must be an
// object ID: the control plane passes it to Resource Manager, so anything
// else is refused before any store or grant is touched.
func TestRegisterRefusesAKeyVaultPrincipalThatIsNoObjectID(t *testing.T) {
	e := New(Deps{Auth: Tokens{RoleContributor: "c-0123456789abcdef"}, Now: time.Now})
	for _, principal := range []string{"machine-a", "aaaaaaaa-0000-4000-8000-00000000000a/../x", "'; DROP", strings.Repeat("a", 36)} {
		b, _ := json.Marshal(wire.Register{VaultID: "v", CredentialID: "c", Secret: "s", MachineName: "pc", PublicKey: "k", KeyVaultPrincipalID: principal})
		req := httptest.NewRequest(http.MethodPost, "/api/v1/register", strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		var body wire.Error
		if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Code != wire.CodeValidation ||
			!strings.Contains(body.Message, "keyVaultPrincipalId") {
			t.Errorf("principal %q: %d %s", principal, rec.Code, rec.Body)
		}
	}
}
