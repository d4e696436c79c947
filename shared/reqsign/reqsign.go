// Package reqsign signs an agent's requests to the control plane with the
// machine's Ed25519 key, and verifies them. The control plane keeps only the
// public key, so a leaked table cannot be used to act as a machine.
//
// The signature covers the method, the canonical path and query (see
// Canonical), a timestamp, a random nonce and the SHA-256 of the body. The server refuses timestamps outside a
// window and nonces it has seen inside that window, so a captured request
// can be neither replayed nor kept for later.
package reqsign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	HeaderMachine   = "X-Coffer-Machine"
	HeaderTimestamp = "X-Coffer-Timestamp"
	HeaderNonce     = "X-Coffer-Nonce"
	HeaderSignature = "X-Coffer-Signature"
)

// Window is how far a signed timestamp may be from the server's clock.
const Window = 5 * time.Minute

const scheme = "coffer-request-v1"

// Errors a verifier reports; the control plane maps them to API codes.
var (
	ErrMissing   = errors.New("request is not signed")
	ErrMalformed = errors.New("request signature headers are malformed")
	ErrBadSig    = errors.New("request signature does not verify")
	ErrStale     = errors.New("request timestamp is outside the allowed window")
)

// NewKey makes a machine's key pair.
func NewKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// EncodePublicKey is the text form sent at registration.
func EncodePublicKey(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

// DecodePublicKey parses EncodePublicKey's form.
func DecodePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key must be %d bytes of standard base64 (an Ed25519 key)", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// Sign adds the signature headers to req for body.
func Sign(req *http.Request, body []byte, machineID string, key ed25519.PrivateKey, now time.Time) error {
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return fmt.Errorf("make nonce: %w", err)
	}
	nonce := hex.EncodeToString(n[:])
	ts := strconv.FormatInt(now.Unix(), 10)
	target, err := Canonical(req.URL)
	if err != nil {
		return fmt.Errorf("sign %s %s: %w", req.Method, req.URL.Path, err)
	}
	sig := ed25519.Sign(key, message(req.Method, target, machineID, ts, nonce, body))
	req.Header.Set(HeaderMachine, machineID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return nil
}

// Signed is what a request's headers claim, before verification.
type Signed struct {
	Machine string
	Time    time.Time
	Nonce   string
	sig     []byte
	ts      string
}

// Parse reads the signature headers. It does not verify anything.
func Parse(req *http.Request) (Signed, error) {
	h := req.Header
	m, ts, nonce, sig := h.Get(HeaderMachine), h.Get(HeaderTimestamp), h.Get(HeaderNonce), h.Get(HeaderSignature)
	if m == "" && ts == "" && nonce == "" && sig == "" {
		return Signed{}, ErrMissing
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Signed{}, fmt.Errorf("%w: %s must be Unix seconds", ErrMalformed, HeaderTimestamp)
	}
	if len(nonce) != 32 || !isHex(nonce) {
		return Signed{}, fmt.Errorf("%w: %s must be 32 hex digits", ErrMalformed, HeaderNonce)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return Signed{}, fmt.Errorf("%w: %s must be a base64 Ed25519 signature", ErrMalformed, HeaderSignature)
	}
	if m == "" || len(m) > 64 {
		return Signed{}, fmt.Errorf("%w: %s must name the machine", ErrMalformed, HeaderMachine)
	}
	return Signed{Machine: m, Time: time.Unix(secs, 0).UTC(), Nonce: nonce, sig: raw, ts: ts}, nil
}

// Verify checks the signature with the machine's public key and the
// timestamp against now. The caller checks the nonce for replay.
func (s Signed) Verify(req *http.Request, body []byte, pub ed25519.PublicKey, now time.Time) error {
	target, err := Canonical(req.URL)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !ed25519.Verify(pub, message(req.Method, target, s.Machine, s.ts, s.Nonce, body), s.sig) {
		return ErrBadSig
	}
	if d := now.Sub(s.Time); d > Window || d < -Window {
		return fmt.Errorf("%w: the request was signed at %s and the server's time is %s; correct the machine's clock",
			ErrStale, s.Time.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Canonical is the signed form of a request's URL: the decoded path, then
// "?" and the query decoded and encoded again with its keys sorted (no "?"
// when there is no query). Both sides sign this form rather than the bytes
// on the wire because the Functions host does not forward the URL as it
// came: it rebuilds the query from ASP.NET's parsed collection
// (HttpRequestExtensions.ToHttpRequestMessage, QueryHelpers.AddQueryString),
// so values are re-encoded (a space sent as "+" arrives as "%20"), keys may
// change order, and a key given twice arrives once with its values joined
// by a comma. The path is taken from Uri.AbsolutePath, so it is signed
// decoded too.
//
// A key given twice, or twice in different case (ASP.NET's query keys are
// case-insensitive), is refused on both sides rather than merged: the host
// would merge it, but without the host (locally) the server would read the
// first value, and an argument must not mean one thing when signed and
// another when acted on.
func Canonical(u *url.URL) (string, error) {
	path := u.Path
	if path == "" {
		path = "/"
	}
	if u.RawQuery == "" {
		return path, nil
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", fmt.Errorf("query %q cannot be parsed: %w", u.RawQuery, err)
	}
	seen := make(map[string]string, len(q))
	for k, vs := range q {
		if k == "" {
			return "", fmt.Errorf("query %q has a value without a name", u.RawQuery)
		}
		if len(vs) > 1 {
			return "", fmt.Errorf("query key %q is given %d times; the Functions host would merge the values, so send it once", k, len(vs))
		}
		lk := strings.ToLower(k)
		if other, dup := seen[lk]; dup {
			return "", fmt.Errorf("query keys %q and %q differ only in case; the Functions host treats them as one, so send one", other, k)
		}
		seen[lk] = k
	}
	// url.Values.Encode sorts by key and escapes with QueryEscape: one
	// spelling for every encoding of the same query.
	return path + "?" + q.Encode(), nil
}

func message(method, target, machine, ts, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	var b bytes.Buffer
	for _, f := range []string{scheme, method, target, machine, ts, nonce, hex.EncodeToString(sum[:])} {
		b.WriteString(f)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
