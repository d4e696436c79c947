package portal

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/api"
	"github.com/coffer-backup/coffer/shared/clocktest"
)

var tokens = api.Tokens{api.RoleContributor: "contributor-token-0123456789", api.RoleReader: "reader-token-0123456789abc",
	api.RoleSecurityAdmin: "security-admin-token-0123456789"}

func newEcho(p *Portal) *echo.Echo {
	e := echo.New()
	p.Register(e)
	return e
}

func do(e *echo.Echo, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	return w
}

func signIn(t *testing.T, e *echo.Echo, body string) (*http.Cookie, Session) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/portal/session", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", "http://example.com")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := do(e, r)
	if w.Code != http.StatusOK {
		t.Fatalf("sign in: %d %s", w.Code, w.Body)
	}
	var s Session
	json.Unmarshal(w.Body.Bytes(), &s)
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			return c, s
		}
	}
	t.Fatal("no session cookie")
	return nil, s
}

// Every page and file carries the strict headers, and no file holds an
// inline script or handler the CSP would have to allow.
func TestFilesAreServedWithStrictHeadersAndNoInlineScript(t *testing.T) {
	e := newEcho(New(Options{Tokens: tokens}))
	for _, path := range []string{"/portal/", "/portal/app.js", "/portal/app.css", "/portal/session", "/portal/anything/else", "/api/portal/", "/api/portal/app.js", "/api/portal/session"} {
		w := do(e, httptest.NewRequest(http.MethodGet, path, nil))
		if got := w.Header().Get("Content-Security-Policy"); got != CSP || !strings.Contains(got, "script-src 'self'") {
			t.Errorf("%s: CSP %q", path, got)
		}
		if w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, w.Header())
		}
	}
	if w := do(e, httptest.NewRequest(http.MethodGet, "/portal/app.js", nil)); !strings.HasPrefix(w.Header().Get("Content-Type"), "text/javascript") || w.Code != 200 {
		t.Errorf("app.js: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if w := do(e, httptest.NewRequest(http.MethodGet, "/portal/../go.mod", nil)); w.Code != http.StatusNotFound && w.Code != http.StatusOK {
		t.Errorf("traversal: %d", w.Code)
	} else if strings.Contains(w.Body.String(), "module ") {
		t.Error("a file outside the portal was served")
	}
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|\son[a-z]+\s*=|javascript:|<style|\sstyle\s*=`)
	fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".html") {
			return err
		}
		b, _ := fs.ReadFile(static, path)
		if m := inline.Find(b); m != nil {
			t.Errorf("%s has inline script or style the CSP refuses: %q", path, m)
		}
		return nil
	})
	// The script never parses text as HTML: machines report some of it.
	js, _ := fs.ReadFile(static, "static/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

func TestTokenSignInGivesAStrictSessionCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := newEcho(New(Options{Tokens: tokens, Secure: secure}))
		c, s := signIn(t, e, `{"token":"contributor-token-0123456789"}`)
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != secure || c.Path != "/" {
			t.Errorf("secure=%v: cookie %+v", secure, c)
		}
		if s.Role != int(api.RoleContributor) || s.CSRF == "" || s.Name != "token:backup-contributor" {
			t.Errorf("session %+v", s)
		}
		r := httptest.NewRequest(http.MethodGet, "/portal/session", nil)
		r.AddCookie(c)
		w := do(e, r)
		var got Session
		json.Unmarshal(w.Body.Bytes(), &got)
		if w.Code != 200 || got.CSRF != s.CSRF || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET session: %d %s", w.Code, w.Body)
		}
	}
}

func TestSignInRefusesWrongTokensAndOtherSites(t *testing.T) {
	e := newEcho(New(Options{Tokens: tokens}))
	for name, tc := range map[string]struct {
		body, ct, origin, site string
		want                   int
	}{
		"wrong token":         {`{"token":"nope-nope-nope-nope"}`, "application/json", "", "same-origin", 401},
		"form post":           {`token=contributor-token-0123456789`, "application/x-www-form-urlencoded", "", "", 403},
		"other origin":        {`{"token":"contributor-token-0123456789"}`, "application/json", "https://evil.example", "", 403},
		"cross-site fetch":    {`{"token":"contributor-token-0123456789"}`, "application/json", "", "cross-site", 403},
		"both token and link": {`{"token":"a","link":"b"}`, "application/json", "", "", 400},
	} {
		r := httptest.NewRequest(http.MethodPost, "/portal/session", strings.NewReader(tc.body))
		r.Header.Set("Content-Type", tc.ct)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.site != "" {
			r.Header.Set("Sec-Fetch-Site", tc.site)
		}
		w := do(e, r)
		if w.Code != tc.want || len(w.Result().Cookies()) != 0 {
			t.Errorf("%s: %d %s, cookies %v", name, w.Code, w.Body, w.Result().Cookies())
		}
	}
}

// A sign-in link works once, within its time, and needs a token to make.
func TestSignInLinksWorkOnce(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))
	e := newEcho(New(Options{Tokens: tokens, Now: clock.Now, PublicURL: "http://127.0.0.1:7071"}))
	newLink := func(token string) (int, Link) {
		r := httptest.NewRequest(http.MethodPost, "/portal/links", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := do(e, r)
		var l Link
		json.Unmarshal(w.Body.Bytes(), &l)
		return w.Code, l
	}
	if code, _ := newLink(""); code != http.StatusUnauthorized {
		t.Fatalf("a link without a token: %d", code)
	}
	code, l := newLink("reader-token-0123456789abc")
	prefix := "http://127.0.0.1:7071/portal/#signin="
	if code != http.StatusCreated || !strings.HasPrefix(l.URL, prefix) {
		t.Fatalf("link: %d %+v", code, l)
	}
	linkCode := strings.TrimPrefix(l.URL, prefix)
	_, s := signIn(t, e, `{"link":"`+linkCode+`"}`)
	if s.Role != int(api.RoleReader) {
		t.Fatalf("the link signed in as %+v", s)
	}
	r := httptest.NewRequest(http.MethodPost, "/portal/session", strings.NewReader(`{"link":"`+linkCode+`"}`))
	r.Header.Set("Content-Type", "application/json")
	if w := do(e, r); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "already used") {
		t.Fatalf("second use: %d %s", w.Code, w.Body)
	}
	_, l = newLink("contributor-token-0123456789")
	clock.Advance(LinkTTL)
	r = httptest.NewRequest(http.MethodPost, "/portal/session", strings.NewReader(`{"link":"`+strings.TrimPrefix(l.URL, prefix)+`"}`))
	r.Header.Set("Content-Type", "application/json")
	if w := do(e, r); w.Code != http.StatusUnauthorized {
		t.Fatalf("expired link: %d %s", w.Code, w.Body)
	}
}

type nextAuth struct{ called bool }

func (n *nextAuth) Authenticate(r *http.Request) (api.Principal, error) {
	n.called = true
	return api.Principal{Name: "next", Role: api.RoleReader}, nil
}

// The API takes the session for reads; a change needs the CSRF header; a
// bearer token goes to the API's own authenticator; a forged or expired
// session is refused.
func TestSessionAuthenticatesTheAPIWithCSRFOnChanges(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))
	p := New(Options{Tokens: tokens, Now: clock.Now})
	e := newEcho(p)
	c, s := signIn(t, e, `{"token":"contributor-token-0123456789"}`)
	next := &nextAuth{}
	auth := p.Authenticator(next)
	req := func(method string, cookie *http.Cookie, csrf, bearer string) *http.Request {
		r := httptest.NewRequest(method, "/api/v1/vaults", nil)
		if cookie != nil {
			r.AddCookie(cookie)
		}
		if csrf != "" {
			r.Header.Set(CSRFHeader, csrf)
		}
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		return r
	}
	if who, err := auth.Authenticate(req("GET", c, "", "")); err != nil || who.Role != api.RoleContributor || next.called {
		t.Errorf("read with the session: %+v %v", who, err)
	}
	if _, err := auth.Authenticate(req("POST", c, "", "")); !errors.Is(err, api.ErrRefused) {
		t.Errorf("change without CSRF: %v", err)
	}
	if _, err := auth.Authenticate(req("DELETE", c, "not-the-token", "")); !errors.Is(err, api.ErrRefused) {
		t.Errorf("change with a wrong CSRF token: %v", err)
	}
	if who, err := auth.Authenticate(req("POST", c, s.CSRF, "")); err != nil || who.Role != api.RoleContributor {
		t.Errorf("change with CSRF: %+v %v", who, err)
	}
	if _, err := auth.Authenticate(req("POST", nil, "", "x")); err != nil || !next.called {
		t.Errorf("bearer: %v %v", err, next.called)
	}
	next.called = false
	if _, err := auth.Authenticate(req("GET", nil, "", "")); !next.called {
		t.Errorf("no session goes to the API's authenticator: %v", err)
	}
	// A session whose payload was changed (a Reader making itself
	// Contributor) fails its signature.
	payload, sig, _ := strings.Cut(c.Value, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	raw = []byte(strings.Replace(string(raw), `"r":3`, `"r":3,"x":1`, 1))
	forged := &http.Cookie{Name: SessionCookie, Value: base64.RawURLEncoding.EncodeToString(raw) + "." + sig}
	if _, err := auth.Authenticate(req("GET", forged, "", "")); err == nil {
		t.Error("a forged session was accepted")
	}
	clock.Advance(DefaultSessionTTL)
	if _, err := auth.Authenticate(req("GET", c, "", "")); err == nil {
		t.Error("an expired session was accepted")
	}
	// Another deployment's tokens make another key.
	other := New(Options{Tokens: api.Tokens{api.RoleContributor: "some-other-token-0123456789"}, Now: clock.Now}).Authenticator(next)
	clock.Advance(-DefaultSessionTTL)
	if _, err := other.Authenticate(req("GET", c, "", "")); err == nil {
		t.Error("a session of other tokens was accepted")
	}
}

func principalHeader(role string) string {
	b, _ := json.Marshal(map[string]any{"auth_typ": "aad", "name_typ": "preferred_username", "role_typ": "roles",
		"claims": []map[string]string{{"typ": "roles", "val": role}, {"typ": "preferred_username", "val": "ann@contoso.example"}}})
	return base64.StdEncoding.EncodeToString(b)
}

// In Azure the browser's App Service session signs requests in; its
// changes need the CSRF cookie's token in the header, bearer calls do not.
func TestAppServiceSessionsNeedCSRFOnChanges(t *testing.T) {
	p := New(Options{Secure: true})
	e := newEcho(p)
	r := httptest.NewRequest(http.MethodGet, "/portal/session", nil)
	if w := do(e, r); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), EntraSignIn[:14]) {
		t.Fatalf("signed out: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest(http.MethodGet, "/portal/session", nil)
	r.Header.Set("X-MS-CLIENT-PRINCIPAL", principalHeader("Backup.Operator"))
	w := do(e, r)
	var s Session
	json.Unmarshal(w.Body.Bytes(), &s)
	var csrf *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == CSRFCookie {
			csrf = c
		}
	}
	if w.Code != 200 || s.Role != int(api.RoleOperator) || csrf == nil || csrf.Value != s.CSRF || !csrf.Secure || !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session: %d %s %+v", w.Code, w.Body, csrf)
	}
	if w.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over HTTPS")
	}
	auth := p.Authenticator(api.AppService{})
	req := func(method, token string, bearer bool) *http.Request {
		r := httptest.NewRequest(method, "/api/v1/vaults/v/alerts/a/acknowledge", nil)
		r.Header.Set("X-MS-CLIENT-PRINCIPAL", principalHeader("Backup.Operator"))
		r.AddCookie(csrf)
		if token != "" {
			r.Header.Set(CSRFHeader, token)
		}
		if bearer {
			r.Header.Set("Authorization", "Bearer entra-token")
		}
		return r
	}
	if _, err := auth.Authenticate(req("POST", "", false)); !errors.Is(err, api.ErrRefused) {
		t.Errorf("browser change without CSRF: %v", err)
	}
	if who, err := auth.Authenticate(req("POST", s.CSRF, false)); err != nil || who.Name != "ann@contoso.example" {
		t.Errorf("browser change with CSRF: %+v %v", who, err)
	}
	if _, err := auth.Authenticate(req("POST", "", true)); err != nil {
		t.Errorf("bearer change: %v", err)
	}
	if _, err := auth.Authenticate(req("GET", "", false)); err != nil {
		t.Errorf("browser read: %v", err)
	}
	r = httptest.NewRequest(http.MethodPost, "/portal/session", strings.NewReader(`{"token":"x"}`))
	r.Header.Set("Content-Type", "application/json")
	if w := do(e, r); w.Code != http.StatusBadRequest || len(w.Result().Cookies()) != 0 {
		t.Errorf("token sign-in in Azure: %d %s", w.Code, w.Body)
	}
}

// A Backup Security Admin's session keeps the capability, for the API and
// for the page.
func TestSecurityAdminSessionKeepsTheCapability(t *testing.T) {
	p := New(Options{Tokens: tokens})
	e := newEcho(p)
	c, s := signIn(t, e, `{"token":"security-admin-token-0123456789"}`)
	if !s.SecurityAdmin || s.Role != int(api.RoleReader) || s.RoleName != api.RoleSecurityAdmin.String() {
		t.Fatalf("session %+v", s)
	}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/vaults/v/approvals/a/approve", nil)
	r.AddCookie(c)
	r.Header.Set(CSRFHeader, s.CSRF)
	who, err := p.Authenticator(&nextAuth{}).Authenticate(r)
	if err != nil || !who.SecurityAdmin || who.Role != api.RoleReader {
		t.Fatalf("principal %+v %v", who, err)
	}
}

// The portal is also mounted under /api/portal/, the path the Functions
// host forwards in Azure, with the same page and session.
func TestPortalIsServedUnderTheHostsPathToo(t *testing.T) {
	e := newEcho(New(Options{Tokens: tokens}))
	for _, tc := range []struct{ path, want string }{{"/portal", "/portal/"}, {"/api/portal", "/api/portal/"}} {
		w := do(e, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != tc.want {
			t.Errorf("%s: %d to %q", tc.path, w.Code, w.Header().Get("Location"))
		}
	}
	a := do(e, httptest.NewRequest(http.MethodGet, "/portal/", nil))
	b := do(e, httptest.NewRequest(http.MethodGet, "/api/portal/", nil))
	if a.Code != 200 || b.Code != 200 || a.Body.String() != b.Body.String() {
		t.Fatalf("the two mounts serve different pages: %d %d", a.Code, b.Code)
	}
	// The page refers to its files relatively, so either mount finds them.
	if strings.Contains(a.Body.String(), `"/portal/`) {
		t.Error("index.html names /portal/ absolutely")
	}
	r := httptest.NewRequest(http.MethodPost, "/api/portal/session", strings.NewReader(`{"token":"reader-token-0123456789abc"}`))
	r.Header.Set("Content-Type", "application/json")
	if w := do(e, r); w.Code != http.StatusOK {
		t.Errorf("sign-in under /api/portal/: %d %s", w.Code, w.Body)
	}
}
