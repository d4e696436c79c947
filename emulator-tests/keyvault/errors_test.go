package keyvault_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

// Requests the azsecrets client never sends still get Key Vault's error shape.
func TestMalformedRequestsGetKeyVaultErrors(t *testing.T) {
	s, c, _ := startWithClient(t)
	set(t, c, "exists", "v")
	hc := rawClient(t, s)
	const q = "?api-version=7.4"

	for _, tc := range []struct {
		name      string
		method    string
		path      string
		body      string
		status    int
		code      string
		wantAllow string
	}{
		{"invalid JSON body", http.MethodPut, "/secrets/x" + q, `{"value":`, 400, "BadParameter", ""},
		{"empty body", http.MethodPut, "/secrets/x" + q, ``, 400, "BadParameter", ""},
		{"JSON array body", http.MethodPut, "/secrets/x" + q, `["v"]`, 400, "BadParameter", ""},
		{"JSON null body", http.MethodPut, "/secrets/x" + q, `null`, 400, "BadParameter", ""},
		{"trailing data after the object", http.MethodPut, "/secrets/x" + q, `{"value":"v"} {}`, 400, "BadParameter", ""},
		{"value of the wrong type", http.MethodPut, "/secrets/x" + q, `{"value":5}`, 400, "BadParameter", ""},
		{"missing value", http.MethodPut, "/secrets/x" + q, `{"contentType":"text/plain"}`, 400, "BadParameter", ""},
		{"non-numeric expiry", http.MethodPut, "/secrets/x" + q, `{"value":"v","attributes":{"exp":"soon"}}`, 400, "BadParameter", ""},
		{"content type over 255 characters", http.MethodPut, "/secrets/x" + q, `{"value":"v","contentType":"` + strings.Repeat("c", 256) + `"}`, 400, "BadParameter", ""},
		{"invalid update body", http.MethodPatch, "/secrets/exists/" + q, `nope`, 400, "BadParameter", ""},
		{"invalid name in path", http.MethodGet, "/secrets/bad_name" + q, ``, 400, "BadParameter", ""},
		{"empty name in path", http.MethodGet, "/secrets//versions" + q, ``, 400, "BadParameter", ""},
		{"maxresults zero", http.MethodGet, "/secrets" + q + "&maxresults=0", ``, 400, "BadParameter", ""},
		{"maxresults over 25", http.MethodGet, "/secrets" + q + "&maxresults=26", ``, 400, "BadParameter", ""},
		{"maxresults not a number", http.MethodGet, "/deletedsecrets" + q + "&maxresults=ten", ``, 400, "BadParameter", ""},
		{"garbled skiptoken", http.MethodGet, "/secrets" + q + "&$skiptoken=%21%21", ``, 400, "BadParameter", ""},
		{"unknown route", http.MethodGet, "/keys/k" + q, ``, 404, "NotFound", ""},
		{"too deep a path", http.MethodGet, "/secrets/a/b/c" + q, ``, 404, "NotFound", ""},
		{"root", http.MethodGet, "/" + q, ``, 404, "NotFound", ""},
		{"POST on the secret list", http.MethodPost, "/secrets" + q, ``, 405, "MethodNotAllowed", "GET"},
		{"DELETE on a version", http.MethodDelete, "/secrets/exists/abc" + q, ``, 405, "MethodNotAllowed", "GET, PATCH"},
		{"PUT on a deleted secret", http.MethodPut, "/deletedsecrets/exists" + q, `{}`, 405, "MethodNotAllowed", "GET, DELETE"},
		{"GET on recover", http.MethodGet, "/deletedsecrets/exists/recover" + q, ``, 405, "MethodNotAllowed", "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := do(t, hc, s, tc.method, tc.path, "Bearer t", body)
			wantErrorDoc(t, r, tc.status, tc.code)
			if got := r.header.Get("Allow"); got != tc.wantAllow {
				t.Fatalf("Allow %q, want %q", got, tc.wantAllow)
			}
		})
	}
}

func TestRequestBodyIsSizeLimited(t *testing.T) {
	s := startServer(t, keyvault.Options{})
	hc := rawClient(t, s)
	huge := `{"value":"` + strings.Repeat("a", 1<<20) + `"}`
	r := do(t, hc, s, http.MethodPut, "/secrets/huge?api-version=7.4", "Bearer t", strings.NewReader(huge))
	wantErrorDoc(t, r, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")
}
