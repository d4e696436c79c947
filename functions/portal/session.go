package portal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/functions/api"
)

// session is what the signed session cookie carries (local sign-in). It is
// stateless, so any instance of the control plane that knows the key can
// check it; it ends at Expires or when the tokens (and so the key) change.
type session struct {
	Name string   `json:"n"`
	Role api.Role `json:"r"`
	// SecurityAdmin approves multi-user authorization requests, beside
	// the rank in Role.
	SecurityAdmin bool   `json:"s,omitempty"`
	CSRF          string `json:"c"` // the token state changes must echo in CSRFHeader
	Expires       int64  `json:"e"` // Unix seconds
}

func (ss session) principal() api.Principal {
	return api.Principal{Name: ss.Name, Role: ss.Role, SecurityAdmin: ss.SecurityAdmin}
}

// sealer signs and checks session cookies with an HMAC key.
type sealer struct{ key []byte }

// keyFromTokens derives the session key from the role tokens, so sessions
// survive a restart of the control plane and end when a token is rotated.
func keyFromTokens(tokens api.Tokens) []byte {
	h := hmac.New(sha256.New, []byte("coffer portal session key v1"))
	for _, r := range []api.Role{api.RoleReader, api.RoleOperator, api.RoleContributor, api.RoleSecurityAdmin} {
		fmt.Fprintf(h, "%d=%d:%s;", r, len(tokens[r]), tokens[r])
	}
	return h.Sum(nil)
}

func (s sealer) seal(ss session) string {
	b, _ := json.Marshal(ss)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload))
}

func (s sealer) mac(payload string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(payload))
	return h.Sum(nil)
}

var errBadSession = errors.New("the portal session is not valid or has expired; sign in again")

// open checks a cookie's signature and expiry.
func (s sealer) open(cookie string, now time.Time) (session, error) {
	if len(cookie) > 4096 {
		return session{}, errBadSession
	}
	payload, sig, ok := strings.Cut(cookie, ".")
	if !ok {
		return session{}, errBadSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return session{}, errBadSession
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return session{}, errBadSession
	}
	var ss session
	if err := json.Unmarshal(b, &ss); err != nil || ss.CSRF == "" || ss.Role <= api.RoleNone || ss.Role > api.RoleContributor {
		return session{}, errBadSession
	}
	if now.Unix() >= ss.Expires {
		return session{}, errBadSession
	}
	return ss, nil
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sameToken compares two tokens in constant time; empty never matches.
func sameToken(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
