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
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("control plane answered %d %s: %s", e.Status, e.Body.Code, e.Body.Message)
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
// (nil to discard). It returns the response headers.
func (c *Client) Do(ctx context.Context, method, path string, in, out any, extra ...http.Header) (http.Header, error) {
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
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.Header, fmt.Errorf("read the control plane's answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		se := &StatusError{Status: resp.StatusCode}
		if json.Unmarshal(b, &se.Body) != nil || se.Body.Code == "" {
			se.Body.Code, se.Body.Message = "http_"+fmt.Sprint(resp.StatusCode), strings.TrimSpace(string(b))
		}
		return resp.Header, se
	}
	if out != nil && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.Header, fmt.Errorf("decode the control plane's answer to %s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

// PIN is a header carrying a security PIN, for Do's extra argument.
func PIN(pin string) http.Header { return http.Header{wire.PINHeader: {pin}} }
