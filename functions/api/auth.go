package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/nonce"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Role is an admin's role, as in Azure Backup. The registry's protection
// rules name roles too, so the type lives there.
type Role = registry.Role

const (
	RoleNone        = registry.RoleNone
	RoleReader      = registry.RoleReader      // read only
	RoleOperator    = registry.RoleOperator    // no deletes, no policy changes; credentials, backups, restores
	RoleContributor = registry.RoleContributor // everything
	// RoleSecurityAdmin approves or rejects multi-user authorization
	// requests and reads: Principal.SecurityAdmin, beside the rank above.
	RoleSecurityAdmin = registry.RoleSecurityAdmin
)

// App role values in the Entra app registration.
var appRoles = map[string]Role{
	"Backup.Reader":      RoleReader,
	"Backup.Operator":    RoleOperator,
	"Backup.Contributor": RoleContributor,
	// A separate capability, never a rank: see Principal.SecurityAdmin.
	"Backup.SecurityAdmin": RoleSecurityAdmin,
}

// Principal is an authenticated admin.
type Principal struct {
	Name string
	Role Role // the rank: Reader, Operator or Contributor
	// SecurityAdmin holds the Backup Security Admin role: it may approve
	// or reject multi-user authorization requests (never its own). Alone
	// it reads as a Reader and does nothing else.
	SecurityAdmin bool
}

// roles describes what p holds, for refusals.
func (p Principal) roles() string {
	switch {
	case p.SecurityAdmin && p.Role <= RoleReader:
		return RoleSecurityAdmin.String()
	case p.SecurityAdmin:
		return p.Role.String() + " and " + RoleSecurityAdmin.String()
	}
	return p.Role.String()
}

// Authenticator finds the admin behind a request.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

var errNoCredentials = errors.New("no credentials")

// ErrRefused marks an Authenticator's refusal of a request whose
// credentials are valid but not enough, such as a browser session's state
// change without its CSRF token: answered 403, not 401.
var ErrRefused = errors.New("refused")

// ErrNoCredentials is what an Authenticator returns when the request
// carries no credentials at all, so one wrapping another can tell.
var ErrNoCredentials = errNoCredentials

// Tokens authenticates with static bearer tokens, one per role, from
// settings: for local use and the emulator tests.
type Tokens map[Role]string

// Authenticate implements Authenticator.
func (t Tokens) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return Principal{}, errNoCredentials
	}
	got := sha256.Sum256([]byte(tok))
	best, security := RoleNone, false
	for role, want := range t {
		if want == "" {
			continue
		}
		w := sha256.Sum256([]byte(want))
		if subtle.ConstantTimeCompare(got[:], w[:]) == 1 {
			if role == RoleSecurityAdmin {
				security = true
			} else if role > best {
				best = role
			}
		}
	}
	name := best
	if security {
		// The Security Admin's token is its own session, so it is never
		// the requester of what a Contributor's token asked for. Config
		// refuses one token for both.
		name = RoleSecurityAdmin
		best = max(best, RoleReader)
	}
	if best == RoleNone {
		return Principal{}, errors.New("the bearer token matches no role")
	}
	return Principal{Name: "token:" + strings.ToLower(strings.ReplaceAll(name.String(), " ", "-")), Role: best, SecurityAdmin: security}, nil
}

// AppService trusts App Service Authentication, which validates the Entra
// token and replaces any client-sent X-MS-CLIENT-PRINCIPAL header. Use it
// only where that is so.
type AppService struct{}

// clientPrincipal is the decoded X-MS-CLIENT-PRINCIPAL header.
type clientPrincipal struct {
	AuthType string `json:"auth_typ"`
	NameType string `json:"name_typ"`
	RoleType string `json:"role_typ"`
	Claims   []struct {
		Type  string `json:"typ"`
		Value string `json:"val"`
	} `json:"claims"`
}

// ParsePrincipal decodes the header App Service Authentication sets.
func ParsePrincipal(header string) (Principal, error) {
	if header == "" {
		return Principal{}, errNoCredentials
	}
	if len(header) > 64<<10 {
		return Principal{}, errors.New("client principal header is too large")
	}
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return Principal{}, fmt.Errorf("client principal header is not base64: %w", err)
	}
	var cp clientPrincipal
	if err := json.Unmarshal(raw, &cp); err != nil {
		return Principal{}, fmt.Errorf("client principal header is not JSON: %w", err)
	}
	roleType := cp.RoleType
	if roleType == "" {
		roleType = "roles"
	}
	p := Principal{}
	for _, c := range cp.Claims {
		switch {
		case c.Type == roleType || c.Type == "roles":
			if r := appRoles[c.Value]; r == RoleSecurityAdmin {
				p.SecurityAdmin = true
			} else if r > p.Role {
				p.Role = r
			}
		case c.Type == cp.NameType || (p.Name == "" && (c.Type == "preferred_username" || c.Type == "name")):
			p.Name = c.Value
		}
	}
	if p.SecurityAdmin && p.Role == RoleNone {
		p.Role = RoleReader // a Security Admin views what it approves
	}
	if p.Role == RoleNone {
		return Principal{}, errors.New("the signed-in identity has none of the app roles Backup.Reader, Backup.Operator, Backup.Contributor or Backup.SecurityAdmin; ask an owner to assign one")
	}
	return p, nil
}

// Authenticate implements Authenticator.
func (AppService) Authenticate(r *http.Request) (Principal, error) {
	return ParsePrincipal(r.Header.Get("X-MS-CLIENT-PRINCIPAL"))
}

type ctxKey int

const (
	principalKey ctxKey = iota
	machineKey
	bodyKey
)

// adminOnly authenticates an admin and refuses one below role, before the
// handler reads the body. The route table gives each admin route its role.
func (s *server) adminOnly(who access, what string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, err := s.Auth.Authenticate(c.Request())
			if err != nil {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="coffer"`)
				if errors.Is(err, ErrRefused) {
					return fail(http.StatusForbidden, wire.CodeForbidden, "%v", err)
				}
				if errors.Is(err, errNoCredentials) {
					return fail(http.StatusUnauthorized, wire.CodeUnauthenticated, "sign in: send Authorization: Bearer <token> (locally) or sign in through the app's Entra ID login (in Azure)")
				}
				return fail(http.StatusUnauthorized, wire.CodeUnauthenticated, "%v", err)
			}
			c.Set(fmt.Sprint(principalKey), p)
			if who.securityAdmin {
				if !p.SecurityAdmin {
					return fail(http.StatusForbidden, wire.CodeForbidden, "%s needs the %s role; you are a %s", what, RoleSecurityAdmin, p.roles())
				}
			} else if err := need(c, who.role, what); err != nil {
				return err
			}
			return next(c)
		}
	}
}

func principal(c echo.Context) Principal {
	p, _ := c.Get(fmt.Sprint(principalKey)).(Principal)
	return p
}

// need refuses the request unless the admin has at least role.
func need(c echo.Context, role Role, what string) error {
	if p := principal(c); p.Role < role {
		return fail(http.StatusForbidden, wire.CodeForbidden, "%s needs the %s role; you are a %s", what, role, p.roles())
	}
	return nil
}

// agent verifies a machine's signature, timestamp and nonce.
func (s *server) agent(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := readBody(c)
		if err != nil {
			return err
		}
		req := c.Request()
		signed, err := reqsign.Parse(req)
		if err != nil {
			return fail(http.StatusUnauthorized, wire.CodeUnauthenticated, "%v; register the machine with `coffer register` and send requests through the agent", err)
		}
		m, err := s.Registry.Machine(req.Context(), signed.Machine)
		if errors.Is(err, registry.ErrNotFound) {
			return fail(http.StatusUnauthorized, wire.CodeUnauthenticated, "machine %s is not registered (or was purged); register it again", signed.Machine)
		}
		if err != nil {
			return err
		}
		pub, err := reqsign.DecodePublicKey(m.PublicKey)
		if err != nil {
			return fmt.Errorf("stored public key of machine %s: %w", m.ID, err)
		}
		if err := signed.Verify(req, body, pub, s.Now()); err != nil {
			if errors.Is(err, reqsign.ErrStale) {
				return fail(http.StatusUnauthorized, wire.CodeStaleRequest, "%v", err)
			}
			return fail(http.StatusUnauthorized, wire.CodeUnauthenticated, "%v", err)
		}
		if err := s.Nonces.Remember(req.Context(), m.ID, signed.Nonce, signed.Time); err != nil {
			if errors.Is(err, nonce.ErrReplay) {
				return fail(http.StatusUnauthorized, wire.CodeReplay, "this request was already received; each signed request is accepted once")
			}
			return err
		}
		c.Set(fmt.Sprint(machineKey), m)
		c.Set(fmt.Sprint(bodyKey), body)
		return next(c)
	}
}

func machine(c echo.Context) registry.Machine {
	m, _ := c.Get(fmt.Sprint(machineKey)).(registry.Machine)
	return m
}

func agentBind(c echo.Context, v any) error {
	b, _ := c.Get(fmt.Sprint(bodyKey)).([]byte)
	return decode(b, v)
}

// unavailable reports whether err is a dependency's outage rather than a bug.
// storageRefused reports a 401 or 403 from Azure Storage itself: the
// control plane's identity is not (yet) allowed there, which is the
// deployment's state, not the client's mistake.
func storageRefused(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized)
}

func unavailable(err error) bool {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}
