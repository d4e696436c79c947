// Package portal is the vault portal: a web dashboard, served by the
// control plane from files embedded in its binary under /portal/, that
// calls the JSON API (/api/v1) with the browser's session.
//
// Sign-in. Locally (COFFER_AUTH_MODE=tokens) an admin pastes a role token,
// or opens a one-time sign-in link (POST /portal/links with the token
// gives one); either becomes a signed, HttpOnly, SameSite=Strict session
// cookie, and no token stays in a URL. In Azure, App Service
// Authentication signs the browser in with Entra ID and sets the principal
// header the API already reads.
//
// Requests. The API accepts the session (Authenticator) as an alternative
// to a bearer token: a state change made with the session must carry the
// session's CSRF token in the X-Coffer-CSRF header, which only a page of
// this origin can read (GET /portal/session). Every portal answer carries
// a strict Content-Security-Policy (no inline script, nothing from another
// origin) and X-Frame-Options: DENY.
package portal

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/api"
	"github.com/coffer-backup/coffer/shared/wire"
)

//go:embed static
var static embed.FS

// Cookie and header names.
const (
	SessionCookie = "coffer_session" // local sign-in: the signed session
	CSRFCookie    = "coffer_csrf"    // Azure: the CSRF token of the App Service session
	CSRFHeader    = "X-Coffer-CSRF"
)

// DefaultSessionTTL is how long a local sign-in lasts.
const DefaultSessionTTL = 8 * time.Hour

// The portal's two mounts: /portal/ everywhere, and /api/portal/, which
// the Functions host forwards to the handler in Azure as it forwards every
// path under /api/ (the api function's route), so the portal needs no
// host.json change there.
const (
	Path     = "/portal"
	HostPath = "/api/portal"
)

// EntraSignIn is App Service Authentication's browser sign-in, back to the
// portal's mount in Azure afterwards.
const EntraSignIn = "/.auth/login/aad?post_login_redirect_uri=" + HostPath + "/"

// CSP allows scripts, styles and requests from the portal's own origin only.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options configure the portal.
type Options struct {
	// Tokens are the local role tokens (COFFER_AUTH_MODE=tokens). Nil means
	// App Service Authentication signs admins in.
	Tokens api.Tokens
	// Secure marks cookies Secure: served over HTTPS, as in Azure.
	Secure bool
	// PublicURL is where browsers reach the control plane, for sign-in
	// links; empty uses the request's host.
	PublicURL  string
	SessionTTL time.Duration
	Now        func() time.Time
	Log        *slog.Logger
}

// Portal serves the pages and checks browser sessions.
type Portal struct {
	o      Options
	sealer sealer
	links  links
	files  fs.FS
}

// New builds the portal.
func New(o Options) *Portal {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	p := &Portal{o: o, files: files}
	if o.Tokens != nil {
		p.sealer = sealer{key: keyFromTokens(o.Tokens)}
	}
	return p
}

func (p *Portal) local() bool { return p.o.Tokens != nil }

// Register adds the portal's routes to e.
func (p *Portal) Register(e *echo.Echo) {
	for _, mount := range []string{Path, HostPath} {
		g := e.Group(mount, p.headers)
		e.GET(mount, func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, mount+"/") }, p.headers)
		g.GET("/session", p.getSession)
		g.POST("/session", p.signIn)
		g.DELETE("/session", p.signOut)
		g.POST("/links", p.newLink)
		g.GET("/*", p.file)
	}
}

// headers sets the security headers of every portal answer.
func (p *Portal) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if p.o.Secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		return next(c)
	}
}

// file serves an embedded file; every other path is the page itself, which
// routes by its fragment.
func (p *Portal) file(c echo.Context) error {
	name := strings.TrimPrefix(c.Param("*"), "/")
	if name == "" || strings.HasSuffix(name, "/") {
		name = "index.html"
	}
	if !fs.ValidPath(name) {
		return c.JSON(http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: "no such portal file"})
	}
	b, err := fs.ReadFile(p.files, name)
	if err != nil {
		return c.JSON(http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: "no such portal file: " + name})
	}
	ct := mime.TypeByExtension(name[strings.LastIndexByte(name, '.'):])
	if ct == "" {
		ct = "application/octet-stream"
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, ct, b)
}

// Session is what GET /portal/session tells the page.
type Session struct {
	Name          string `json:"name"`
	Role          int    `json:"role"` // 1 Reader, 2 Operator, 3 Contributor
	SecurityAdmin bool   `json:"securityAdmin"`
	RoleName      string `json:"roleName"`
	CSRF          string `json:"csrf"`
	Mode          string `json:"mode"` // "tokens" or "appservice"
}

// sessionOf is what the page is told of p.
func (p *Portal) sessionOf(who api.Principal, csrf string) Session {
	name := who.Role.String()
	switch {
	case who.SecurityAdmin && who.Role <= api.RoleReader:
		name = api.RoleSecurityAdmin.String()
	case who.SecurityAdmin:
		name += " and " + api.RoleSecurityAdmin.String()
	}
	return Session{Name: who.Name, Role: int(who.Role), SecurityAdmin: who.SecurityAdmin, RoleName: name, CSRF: csrf, Mode: p.mode()}
}

// signInNeeded is the 401 the page turns into its sign-in form.
type signInNeeded struct {
	wire.Error
	Mode   string `json:"mode"`
	SignIn string `json:"signIn,omitempty"` // where to sign in, in Azure
}

func (p *Portal) mode() string {
	if p.local() {
		return "tokens"
	}
	return "appservice"
}

func (p *Portal) getSession(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	r := c.Request()
	if p.local() {
		ck, err := r.Cookie(SessionCookie)
		if err != nil {
			return c.JSON(http.StatusUnauthorized, signInNeeded{Error: wire.Error{Code: wire.CodeUnauthenticated, Message: "sign in with a role token or a sign-in link"}, Mode: p.mode()})
		}
		ss, err := p.sealer.open(ck.Value, p.o.Now())
		if err != nil {
			p.clear(c, SessionCookie)
			return c.JSON(http.StatusUnauthorized, signInNeeded{Error: wire.Error{Code: wire.CodeUnauthenticated, Message: err.Error()}, Mode: p.mode()})
		}
		return c.JSON(http.StatusOK, p.sessionOf(ss.principal(), ss.CSRF))
	}
	who, err := api.AppService{}.Authenticate(r)
	if err != nil {
		msg := "sign in with your organisation's account"
		if !errors.Is(err, api.ErrNoCredentials) {
			msg = err.Error()
		}
		return c.JSON(http.StatusUnauthorized, signInNeeded{Error: wire.Error{Code: wire.CodeUnauthenticated, Message: msg}, Mode: p.mode(), SignIn: EntraSignIn})
	}
	csrf := ""
	if ck, err := r.Cookie(CSRFCookie); err == nil && len(ck.Value) == 43 {
		csrf = ck.Value
	} else {
		csrf = randomToken()
		p.set(c, CSRFCookie, csrf, 0)
	}
	return c.JSON(http.StatusOK, p.sessionOf(who, csrf))
}

// signInRequest is POST /portal/session: a role token, or a sign-in link's
// code.
type signInRequest struct {
	Token string `json:"token,omitempty"`
	Link  string `json:"link,omitempty"`
}

func (p *Portal) signIn(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if !p.local() {
		return c.JSON(http.StatusBadRequest, signInNeeded{Error: wire.Error{Code: wire.CodeBadRequest,
			Message: "this control plane signs admins in with Entra ID; open " + EntraSignIn}, Mode: p.mode(), SignIn: EntraSignIn})
	}
	if err := sameOrigin(c.Request()); err != nil {
		return c.JSON(http.StatusForbidden, wire.Error{Code: wire.CodeForbidden, Message: err.Error()})
	}
	var req signInRequest
	if err := (&echo.DefaultBinder{}).BindBody(c, &req); err != nil || (req.Token == "") == (req.Link == "") {
		return c.JSON(http.StatusBadRequest, wire.Error{Code: wire.CodeBadRequest, Message: `send {"token": "<role token>"} or {"link": "<sign-in link code>"}`})
	}
	now := p.o.Now()
	var who api.Principal
	if req.Link != "" {
		var ok bool
		if who, ok = p.links.redeem(req.Link, now); !ok {
			return c.JSON(http.StatusUnauthorized, signInNeeded{Error: wire.Error{Code: wire.CodeUnauthenticated,
				Message: "this sign-in link was already used or has expired (links work once, for 10 minutes); ask for a new one or sign in with your role token"}, Mode: p.mode()})
		}
	} else {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+req.Token)
		var err error
		if who, err = p.o.Tokens.Authenticate(r); err != nil {
			p.o.Log.Warn("portal sign-in refused", "remote", c.RealIP(), "err", err)
			return c.JSON(http.StatusUnauthorized, signInNeeded{Error: wire.Error{Code: wire.CodeUnauthenticated,
				Message: "that token matches no role; use the value of COFFER_TOKEN_CONTRIBUTOR, _OPERATOR or _READER"}, Mode: p.mode()})
		}
	}
	ss := session{Name: who.Name, Role: who.Role, SecurityAdmin: who.SecurityAdmin, CSRF: randomToken(), Expires: now.Add(p.o.SessionTTL).Unix()}
	p.set(c, SessionCookie, p.sealer.seal(ss), p.o.SessionTTL)
	p.o.Log.Info("portal sign-in", "who", who.Name, "by", map[bool]string{true: "link", false: "token"}[req.Link != ""])
	return c.JSON(http.StatusOK, p.sessionOf(ss.principal(), ss.CSRF))
}

func (p *Portal) signOut(c echo.Context) error {
	if p.local() {
		if ck, err := c.Request().Cookie(SessionCookie); err == nil {
			ss, err := p.sealer.open(ck.Value, p.o.Now())
			if err == nil && !sameToken(c.Request().Header.Get(CSRFHeader), ss.CSRF) {
				return c.JSON(http.StatusForbidden, wire.Error{Code: wire.CodeForbidden, Message: "signing out needs the session's " + CSRFHeader + " header"})
			}
		}
		p.clear(c, SessionCookie)
		return c.NoContent(http.StatusNoContent)
	}
	p.clear(c, CSRFCookie)
	return c.JSON(http.StatusOK, map[string]string{"signOut": "/.auth/logout?post_logout_redirect_uri=" + HostPath + "/"})
}

// Link is a one-time sign-in link.
type Link struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// newLink gives the holder of a role token a link that signs a browser in
// once with that role: devstack prints one, so nobody pastes a token into
// a page. The code is in the URL's fragment, which browsers never send.
func (p *Portal) newLink(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if !p.local() {
		return c.JSON(http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: "sign-in links are for local use; in Azure open " + EntraSignIn})
	}
	who, err := p.o.Tokens.Authenticate(c.Request())
	if err != nil {
		return c.JSON(http.StatusUnauthorized, wire.Error{Code: wire.CodeUnauthenticated, Message: "send Authorization: Bearer <role token>; the link signs in with that role"})
	}
	now := p.o.Now()
	code := p.links.issue(who, now)
	base := strings.TrimRight(p.o.PublicURL, "/")
	if base == "" {
		base = scheme(c.Request()) + "://" + c.Request().Host
	}
	return c.JSON(http.StatusCreated, Link{URL: base + "/portal/#signin=" + code, ExpiresAt: now.Add(LinkTTL)})
}

func (p *Portal) set(c echo.Context, name, value string, ttl time.Duration) {
	ck := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: p.o.Secure, SameSite: http.SameSiteStrictMode}
	if ttl > 0 {
		ck.MaxAge = int(ttl / time.Second)
	}
	c.SetCookie(ck)
}

func (p *Portal) clear(c echo.Context, name string) {
	c.SetCookie(&http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: p.o.Secure, SameSite: http.SameSiteStrictMode})
}

func scheme(r *http.Request) string {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return "https"
	}
	return "http"
}

// sameOrigin refuses a sign-in another site's page started (login CSRF):
// browsers send Sec-Fetch-Site and Origin on such requests, and a JSON
// body cannot be sent across origins without a preflight this server
// never grants.
func sameOrigin(r *http.Request) error {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return fmt.Errorf("sign-in must come from the portal's own page (Sec-Fetch-Site: %s)", s)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Errorf("sign-in must come from the portal's own page (Origin %s)", o)
		}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return errors.New("sign-in takes a JSON body (Content-Type: application/json)")
	}
	return nil
}

// Authenticator lets the API accept the portal's session as an alternative
// to next's credentials: a request with an Authorization header, or
// without a session, goes to next. A state change made with the session
// (a cookie, which the browser adds by itself) must carry the session's
// CSRF token in the X-Coffer-CSRF header, or is refused with 403.
func (p *Portal) Authenticator(next api.Authenticator) api.Authenticator {
	return guard{p: p, next: next}
}

type guard struct {
	p    *Portal
	next api.Authenticator
}

func (g guard) Authenticate(r *http.Request) (api.Principal, error) {
	bearer := r.Header.Get("Authorization") != ""
	if g.p.local() {
		ck, err := r.Cookie(SessionCookie)
		if bearer || err != nil {
			return g.next.Authenticate(r)
		}
		ss, err := g.p.sealer.open(ck.Value, g.p.o.Now())
		if err != nil {
			return api.Principal{}, err
		}
		if !safe(r.Method) && !sameToken(r.Header.Get(CSRFHeader), ss.CSRF) {
			return api.Principal{}, fmt.Errorf("%w: a change made with a portal session needs the session's %s header; use the portal's own pages", api.ErrRefused, CSRFHeader)
		}
		return ss.principal(), nil
	}
	who, err := g.next.Authenticate(r)
	if err != nil || bearer || safe(r.Method) {
		return who, err
	}
	// App Service Authentication signed this request in by its session
	// cookie: a browser. Its changes need the CSRF token too.
	ck, cerr := r.Cookie(CSRFCookie)
	if cerr != nil || !sameToken(r.Header.Get(CSRFHeader), ck.Value) {
		return api.Principal{}, fmt.Errorf("%w: a change made from a browser session needs the %s header the portal sends; use the portal's own pages, or send the Entra token as Authorization: Bearer", api.ErrRefused, CSRFHeader)
	}
	return who, nil
}

func safe(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}
