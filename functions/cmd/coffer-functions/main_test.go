package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/config"
)

// fakeStorage stands in for Table storage: it answers every read with
// status (403, as while role assignments propagate, or 200 with no rows)
// and records what was asked, so a test can tell a check from a create.
type fakeStorage struct {
	status int
	mu     sync.Mutex
	reqs   []string
}

func newFakeStorage(t *testing.T, status int) (*fakeStorage, *httptest.Server) {
	f := &fakeStorage{status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json;odata=minimalmetadata")
		if f.status == http.StatusForbidden {
			w.Header().Set("x-ms-error-code", "AuthorizationPermissionMismatch")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"odata.error":{"code":"AuthorizationPermissionMismatch","message":{"lang":"en-US","value":"This request is not authorized to perform this operation using this permission."}}}`)
			return
		}
		if r.Method == http.MethodGet {
			io.WriteString(w, `{"value":[]}`)
			return
		}
		// Anything else (a create, a delete) is not what these tests expect.
		w.WriteHeader(http.StatusNotImplemented)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeStorage) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// creates lists the table creations asked for (POST /Tables).
func (f *fakeStorage) creates() []string {
	var out []string
	for _, r := range f.requests() {
		if strings.HasPrefix(r, "POST ") && strings.HasSuffix(r, "/Tables") {
			out = append(out, r)
		}
	}
	return out
}

// hostEnv is the app settings of a host-mode start against tableEndpoint.
// Service Bus points at a closed port: a start must not need it.
func hostEnv(tableEndpoint string) map[string]string {
	return map[string]string{
		config.Port: "7071",
		config.StorageConnection: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
			"BlobEndpoint=" + tableEndpoint + "/devstoreaccount1;TableEndpoint=" + tableEndpoint + "/devstoreaccount1;",
		config.ServiceBusConnection: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
		config.KeyVaultURL:          "https://127.0.0.1:1/",
		config.PublicURL:            "http://127.0.0.1:1",
		config.TokenContributor:     "contributor-token-0123456789",
	}
}

// lockedBuffer is a writer several goroutines may use; line reports each
// complete line written.
type lockedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	line chan string
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{line: make(chan string, 1000)} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	for _, l := range strings.SplitAfter(string(p), "\n") {
		if strings.HasSuffix(l, "\n") {
			select {
			case b.line <- strings.TrimSuffix(l, "\n"):
			default:
			}
		}
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listening = regexp.MustCompile(`^coffer-functions listening on (http://\S+)$`)

// started is a run of the program in this process.
type started struct {
	base           string
	stdout, stderr *lockedBuffer
	stop           func() error // cancels and waits for run to return
}

// start runs the program in host mode and returns once it printed its
// address, failing if that takes longer than within.
func start(t *testing.T, env map[string]string, within time.Duration) *started {
	t.Helper()
	s := &started{stdout: newLockedBuffer(), stderr: newLockedBuffer()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	began := time.Now()
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, s.stdout, s.stderr, time.Now)
	}()
	s.stop = func() error {
		cancel()
		return <-done
	}
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for s.base == "" {
		select {
		case l := <-s.stdout.line:
			if m := listening.FindStringSubmatch(l); m != nil {
				s.base = m[1]
			}
		case err := <-done:
			t.Fatalf("run returned before listening: %v\nstderr: %s", err, s.stderr)
		case <-deadline.C:
			cancel()
			t.Fatalf("not listening %v after start (the host allows 30 s)\nstdout: %s\nstderr: %s", within, s.stdout, s.stderr)
		}
	}
	t.Logf("listening %v after start", time.Since(began).Round(time.Millisecond))
	return s
}

// eventually polls cond until it holds, failing the test after a minute.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatal("condition not met within a minute")
		case <-tick.C:
		}
	}
}

type healthBody struct {
	Status  string         `json:"status"`
	Storage map[string]any `json:"storage"`
}

// health asks /api/v1/health with the whole budget of the test: 5 s from
// the start of the process.
func health(t *testing.T, base string, budget time.Duration) (int, healthBody) {
	t.Helper()
	c := &http.Client{Timeout: budget}
	resp, err := c.Get(base + "/api/v1/health")
	if err != nil {
		t.Fatalf("health did not answer within %v: %v", budget, err)
	}
	defer resp.Body.Close()
	var b healthBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatalf("health body: %v", err)
	}
	return resp.StatusCode, b
}

// TestHostModeAnswersHealthWhileStorageIsUnusable: under the host, the
// handler answers /health within 5 s whatever storage does, says honestly
// that storage is not usable, keeps checking in the background, and
// creates no table.
func TestHostModeAnswersHealthWhileStorageIsUnusable(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "http://" + closed.Addr().String()
	closed.Close()

	forbidden, srv := newFakeStorage(t, http.StatusForbidden)
	for _, tc := range []struct {
		name, endpoint, want string
		fake                 *fakeStorage
	}{
		{"unreachable", unreachable, "", nil},
		{"403 while roles propagate", srv.URL, "403", forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			budget := 5 * time.Second
			s := start(t, hostEnv(tc.endpoint), budget)
			defer s.stop()
			status, b := health(t, s.base, budget-time.Since(began))
			if took := time.Since(began); took > budget {
				t.Fatalf("health answered %v after start, want within %v", took, budget)
			}
			if status != http.StatusServiceUnavailable || b.Status != "degraded" || b.Storage["ok"] != false {
				t.Fatalf("health = %d %+v, want 503 degraded with storage not ok", status, b)
			}
			if tc.fake == nil {
				return
			}
			// The check runs in the background and says what is wrong
			// once it has an answer: wait for that, not for a time.
			eventually(t, func() bool {
				_, b = health(t, s.base, budget)
				return strings.Contains(b.Storage["error"].(string), tc.want)
			})
			if !strings.Contains(b.Storage["error"].(string), "role") {
				t.Errorf("a 403 should name the role assignment: %q", b.Storage["error"])
			}
			if c := tc.fake.creates(); len(c) > 0 {
				t.Fatalf("created tables under the host: %v", c)
			}
		})
	}
}

// TestHostModeWritesNothingToStderr: the host records every stderr line as
// an Error, so a start, a health check, a refused admin request and a timer
// run write only to stdout.
func TestHostModeWritesNothingToStderr(t *testing.T) {
	fake, srv := newFakeStorage(t, http.StatusOK)
	s := start(t, hostEnv(srv.URL), 30*time.Second)
	// Wait until the background check has found storage usable.
	eventually(t, func() bool {
		status, b := health(t, s.base, 5*time.Second)
		return status == http.StatusOK && b.Status == "ok"
	})
	resp, err := http.Get(s.base + "/api/v1/vaults")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin request without a token: %d, want 401", resp.StatusCode)
	}
	timer := `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}`
	resp, err = http.Post(s.base+"/MonitorBackups", "application/json", strings.NewReader(timer))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("MonitorBackups invocation: %d %s", resp.StatusCode, body)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if e := s.stderr.String(); e != "" {
		t.Fatalf("stderr is not empty; the host would log these lines as errors:\n%s", e)
	}
	if out := s.stdout.String(); !strings.Contains(out, `"msg":"coffer-functions listening"`) || !strings.Contains(out, `"msg":"timer function done"`) {
		t.Fatalf("stdout lacks the start and timer logs:\n%s", out)
	}
	if c := fake.creates(); len(c) > 0 {
		t.Fatalf("created tables under the host: %v", c)
	}
}

// TestErrorsGoToStderr: the split is by level, so a real failure still
// reaches the host as an Error.
func TestErrorsGoToStderr(t *testing.T) {
	out, errw := newLockedBuffer(), newLockedBuffer()
	log := newLogger(out, errw).With("component", "test")
	log.Info("fine")
	log.Warn("retrying")
	log.Error("broken")
	if strings.Contains(errw.String(), "fine") || strings.Contains(errw.String(), "retrying") || !strings.Contains(errw.String(), "broken") {
		t.Fatalf("stderr: %s", errw)
	}
	if !strings.Contains(out.String(), "fine") || !strings.Contains(out.String(), "retrying") || strings.Contains(out.String(), "broken") {
		t.Fatalf("stdout: %s", out)
	}
}
