package keyvault_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

// clock is a settable clock for Options.Now. It starts on a whole second
// because Key Vault timestamps have one-second resolution.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func startServer(t *testing.T, opts keyvault.Options) *keyvault.Server {
	t.Helper()
	s, err := keyvault.Start(opts)
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
	})
	return s
}

func newClient(t *testing.T, s *keyvault.Server) *azsecrets.Client {
	t.Helper()
	c, err := azsecrets.NewClient(s.URL(), keyvault.Credential(), s.ClientOptions())
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

// startWithClient is the common setup: an emulator on a fake clock and a real client.
func startWithClient(t *testing.T) (*keyvault.Server, *azsecrets.Client, *clock) {
	t.Helper()
	clk := newClock()
	s := startServer(t, keyvault.Options{Now: clk.Now})
	return s, newClient(t, s), clk
}

func set(t *testing.T, c *azsecrets.Client, name, value string) azsecrets.SetSecretResponse {
	t.Helper()
	resp, err := c.SetSecret(t.Context(), name, azsecrets.SetSecretParameters{Value: &value}, nil)
	if err != nil {
		t.Fatalf("set %s: %v", name, err)
	}
	return resp
}

// wantResponseError asserts err is the client's *azcore.ResponseError with
// the given status and Key Vault error code.
func wantResponseError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v, want *azcore.ResponseError %d %s", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("got %d %q, want %d %q", re.StatusCode, re.ErrorCode, status, code)
	}
}

// rawClient speaks plain HTTP to the emulator, trusting its CA, for checks
// the azsecrets client cannot express (missing token, bad bodies, paths).
func rawClient(t *testing.T, s *keyvault.Server) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig.RootCAs = s.CertPool()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// errorDoc is Key Vault's error shape.
type errorDoc struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// do sends method to the vault URL + pathAndQuery; auth is the Authorization
// header value, "" for none.
func do(t *testing.T, hc *http.Client, s *keyvault.Server, method, pathAndQuery, auth string, body io.Reader) rawResponse {
	t.Helper()
	return doURL(t, hc, method, strings.TrimSuffix(s.URL(), "/")+pathAndQuery, auth, body)
}

func doURL(t *testing.T, hc *http.Client, method, url, auth string, body io.Reader) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantErrorDoc asserts a raw response is a Key Vault error with this status and code.
func wantErrorDoc(t *testing.T, r rawResponse, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var doc errorDoc
	if err := json.Unmarshal(r.body, &doc); err != nil || doc.Error == nil {
		t.Fatalf("body %s is not {\"error\":{...}}: %v", r.body, err)
	}
	if doc.Error.Code != code || doc.Error.Message == "" {
		t.Fatalf("error %+v, want code %q and a message", *doc.Error, code)
	}
}

// countingCredential records every token request the client makes.
type countingCredential struct {
	mu    sync.Mutex
	calls []policy.TokenRequestOptions
}

func (c *countingCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	c.calls = append(c.calls, opts)
	c.mu.Unlock()
	return keyvault.Credential().GetToken(ctx, opts)
}

// recordingTransport records each HTTP exchange the client's pipeline makes.
type recordingTransport struct {
	next  policy.Transporter
	mu    sync.Mutex
	calls []exchange
}

type exchange struct {
	method  string
	path    string
	auth    bool
	hasBody bool
	status  int
}

func (r *recordingTransport) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.next.Do(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.calls = append(r.calls, exchange{
		method:  req.Method,
		path:    req.URL.Path,
		auth:    req.Header.Get("Authorization") != "",
		hasBody: req.ContentLength > 0,
		status:  resp.StatusCode,
	})
	r.mu.Unlock()
	return resp, nil
}

func ptr[T any](v T) *T { return &v }

// waitForGoroutines waits for the goroutine count to fall back to what it
// was; goroutines end asynchronously after Close, so it polls briefly.
func waitForGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", n, want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
