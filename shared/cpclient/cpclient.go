// Package cpclient calls the control plane's API: as an admin with a
// bearer token, or as a registered machine that signs each request.
package cpclient

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Client is one caller of the API.
type Client struct {
	BaseURL string // e.g. https://coffer-cp.azurewebsites.net
	HTTP    *http.Client
	Token   string // admin bearer token; empty for agents

	MachineID string             // a registered machine...
	Key       ed25519.PrivateKey // ...signs with this key

	Now    func() time.Time // signing time; time.Now when nil
	Header http.Header      // extra headers on every request, e.g. a PIN
}

// StatusError is an API error answer.
type StatusError struct {
	Status int
	Body   wire.Error
	// RetryAfter is the answer's Retry-After in seconds (429 pin_locked,
	// 503), zero when it had none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("control plane answered %d %s: %s", e.Status, e.Body.Code, e.Body.Message)
}

// PendingError is the answer to an operation that multi-user authorization
// turned into a request (202 with X-Coffer-Approval): nothing happened yet.
type PendingError struct{ Approval wire.Approval }

func (e *PendingError) Error() string {
	return fmt.Sprintf("this needs a Backup Security Admin's approval: request %s (%s) waits until %s; "+
		"another admin approves it with `coffer admin approvals approve %s %s`, and it then runs once",
		e.Approval.ID, e.Approval.Operation, e.Approval.ExpiresAt.Local().Format(time.DateTime), e.Approval.VaultID, e.Approval.ID)
}

// Pending returns the approval request err carries, if it is a PendingError.
func Pending(err error) (wire.Approval, bool) {
	var pe *PendingError
	if errors.As(err, &pe) {
		return pe.Approval, true
	}
	return wire.Approval{}, false
}

// Code returns the API error code of err, or "".
func Code(err error) string {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Body.Code
	}
	return ""
}

// Do sends in as JSON (nil for no body) and decodes the answer into out
// (nil to discard). It returns the response headers. The typed methods in
// routes.go are the way to call a route; Do is for tests that probe the API
// with requests the agent would never send.
func (c *Client) Do(ctx context.Context, method, path string, in, out any, extra ...http.Header) (http.Header, error) {
	a, err := c.send(ctx, method, path, in, out, extra...)
	if a == nil {
		return nil, err
	}
	return a.header, err
}

// answer is what the control plane sent back.
type answer struct {
	status int
	header http.Header
}

// ErrBadAnswer marks an answer that is not the API's JSON: the URL may
// name something other than Coffer's control plane.
var ErrBadAnswer = errors.New("the answer is not the control plane's JSON")

func (c *Client) send(ctx context.Context, method, path string, in, out any, extra ...http.Header) (*answer, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	for _, h := range extra {
		for k, vs := range h {
			req.Header[k] = vs
		}
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Key != nil {
		now := time.Now
		if c.Now != nil {
			now = c.Now
		}
		if err := reqsign.Sign(req, body, c.MachineID, c.Key, now()); err != nil {
			return nil, err
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the control plane at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	a := &answer{status: resp.StatusCode, header: resp.Header}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return a, fmt.Errorf("read the control plane's answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		se := &StatusError{Status: resp.StatusCode}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			se.RetryAfter = time.Duration(secs) * time.Second
		}
		if json.Unmarshal(b, &se.Body) != nil || se.Body.Code == "" {
			se.Body.Code, se.Body.Message = "http_"+fmt.Sprint(resp.StatusCode), strings.TrimSpace(string(b))
		}
		return a, se
	}
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return a, nil
	}
	if keep, ok := ctx.Value(answerKey{}).(*json.RawMessage); ok && keep != nil {
		*keep = append(json.RawMessage(nil), b...)
	}
	if resp.StatusCode == http.StatusAccepted && resp.Header.Get(wire.ApprovalHeader) != "" {
		pe := &PendingError{}
		if err := json.Unmarshal(b, &pe.Approval); err != nil {
			return a, fmt.Errorf("decode the control plane's answer to %s %s: %w (%w)", method, path, ErrBadAnswer, err)
		}
		return a, pe
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return a, fmt.Errorf("decode the control plane's answer to %s %s: %w (%w)", method, path, ErrBadAnswer, err)
		}
	}
	return a, nil
}

type answerKey struct{}

// KeepAnswer returns a context under which a call also stores the body of
// a successful answer in *raw, exactly as received: an admin's --json
// then shows fields this client does not know yet.
func KeepAnswer(ctx context.Context, raw *json.RawMessage) context.Context {
	return context.WithValue(ctx, answerKey{}, raw)
}

// PIN is a header carrying a security PIN, for Do's extra argument.
func PIN(pin string) http.Header { return http.Header{wire.PINHeader: {pin}} }
