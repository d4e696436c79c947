package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

func principalHeader(t *testing.T, claims map[string]string, roleType string) string {
	t.Helper()
	type claim struct {
		Typ string `json:"typ"`
		Val string `json:"val"`
	}
	cp := struct {
		AuthTyp string  `json:"auth_typ"`
		NameTyp string  `json:"name_typ"`
		RoleTyp string  `json:"role_typ"`
		Claims  []claim `json:"claims"`
	}{AuthTyp: "aad", NameTyp: "preferred_username", RoleTyp: roleType}
	for typ, val := range claims {
		cp.Claims = append(cp.Claims, claim{typ, val})
	}
	b, _ := json.Marshal(cp)
	return base64.StdEncoding.EncodeToString(b)
}

func TestParsePrincipal(t *testing.T) {
	const roleURI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	for _, tc := range []struct {
		name   string
		claims map[string]string
		role   Role
	}{
		{"contributor", map[string]string{roleURI: "Backup.Contributor", "preferred_username": "ann@contoso.com"}, RoleContributor},
		{"operator", map[string]string{roleURI: "Backup.Operator"}, RoleOperator},
		{"reader via roles claim", map[string]string{"roles": "Backup.Reader"}, RoleReader},
		{"no app role", map[string]string{roleURI: "Some.Other.Role"}, RoleNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePrincipal(principalHeader(t, tc.claims, roleURI))
			if tc.role == RoleNone {
				if err == nil {
					t.Fatalf("accepted %+v", p)
				}
				return
			}
			if err != nil || p.Role != tc.role {
				t.Fatalf("got %+v, %v; want %s", p, err, tc.role)
			}
			if tc.name == "contributor" && p.Name != "ann@contoso.com" {
				t.Fatalf("name %q", p.Name)
			}
		})
	}
	for _, bad := range []string{"", "%%%", base64.StdEncoding.EncodeToString([]byte("not json"))} {
		if _, err := ParsePrincipal(bad); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

func TestTokensPickTheRoleOfTheToken(t *testing.T) {
	tok := Tokens{RoleContributor: "c-0123456789abcdef", RoleReader: "r-0123456789abcdef", RoleOperator: ""}
	for token, want := range map[string]Role{"c-0123456789abcdef": RoleContributor, "r-0123456789abcdef": RoleReader} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		p, err := tok.Authenticate(r)
		if err != nil || p.Role != want {
			t.Fatalf("%s: %+v %v", token, p, err)
		}
	}
	for _, h := range []string{"", "Bearer ", "Bearer wrong", "Basic c-0123456789abcdef"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", h)
		if p, err := tok.Authenticate(r); err == nil {
			t.Fatalf("%q authenticated as %+v", h, p)
		}
	}
}

// The routes that need no store: health, authentication failures, unknown
// routes and oversized bodies are all answered with the API's error shape.
func TestErrorsHaveTheAPIShape(t *testing.T) {
	e := New(Deps{Auth: Tokens{RoleContributor: "c-0123456789abcdef"}, Now: time.Now})
	for _, tc := range []struct {
		method, path, auth string
		body               string
		status             int
		code               string
	}{
		{"GET", "/api/v1/vaults", "", "", 401, wire.CodeUnauthenticated},
		{"GET", "/api/v1/vaults", "Bearer nope", "", 401, wire.CodeUnauthenticated},
		{"GET", "/api/v1/agent/policy", "", "", 401, wire.CodeUnauthenticated},
		{"GET", "/nowhere", "", "", 404, wire.CodeNotFound},
		{"POST", "/api/v1/register", "", "{", 400, wire.CodeBadRequest},
		{"POST", "/api/v1/register", "", string(make([]byte, MaxBody+10)), 413, wire.CodeTooLarge},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		var body wire.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != tc.status || body.Code != tc.code || body.Message == "" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/health", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("health: %d", rec.Code)
	}
}

func FuzzParsePrincipal(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"auth_typ":"aad","role_typ":"roles","claims":[{"typ":"roles","val":"Backup.Reader"}]}`)))
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		p, err := ParsePrincipal(h)
		if err == nil && p.Role == RoleNone {
			t.Fatalf("accepted a principal without a role: %q", h)
		}
	})
}

// FuzzDecodeBodies feeds arbitrary bytes to the strict decoder for every
// request type: it must refuse or accept, never panic.
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range []string{`{"name":"x"}`, `{"type":"backup"}`, `{"status":"completed","progress":{"filesDone":1}}`, `{}`, `[]`, `null`, `{"a":1}{"b":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&wire.NewVault{}, &wire.VaultUpdate{}, &wire.Register{}, &wire.NewJob{}, &wire.JobReport{},
			&wire.NewPoint{}, &wire.StopProtection{}, &wire.AssignPolicy{}} {
			_ = decode(b, v)
		}
	})
}
