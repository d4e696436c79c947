package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/functions/app"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/functions/triggers"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// fuzzRequests is how many requests the route fuzzer sends in one run;
// fuzzBudget bounds the run's time, whatever the machine.
const (
	fuzzRequests = 10_000
	fuzzBudget   = 4 * time.Minute
)

// The whole API, every route echo serves, gets at least 10,000 random and
// mutated requests (valid and invalid admin tokens, valid and forged agent
// signatures, valid and mangled IDs, bodies and queries) from a seeded
// generator, against the real control plane on Azurite and the Service Bus
// emulator, as the Functions host runs it, so the timer and Service Bus
// invocations are fuzzed too. No request may panic or get a 5xx: every
// mistake a client can make is its own, a 4xx. The one documented 500 is
// the email function's answer to a poison message, which the host retries
// until Service Bus dead-letters it. A failure names the seed and the
// exact request.
func TestEveryRouteSurvivesTenThousandHostileRequests(t *testing.T) {
	var emu ondemand.Emulators
	emu.Start(t)
	t.Cleanup(func() {
		if err := emu.Stop(); err != nil {
			t.Error(err)
		}
	})
	sink, err := smtpsink.Start(smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	// Under the host, so the timer and Service Bus invocations the
	// Functions host posts are routes too; with mail, so a valid alert is
	// delivered rather than retried.
	env := inproc.Env(emu.Azurite.ConnectionString(), emu.ServiceBus.ConnectionString())
	env[config.SMTPHost], env[config.SMTPPort], env[config.SMTPSecurity] = sink.Host(), sink.Port(), "none"
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The invocation handlers log through the default logger.
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(log)
	a, err := app.New(cfg, app.NewClock(time.Now), log, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	if err := a.EnsureTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	e, ok := a.Handler().(*echo.Echo)
	if !ok {
		t.Fatalf("the control plane's handler is a %T, not echo", a.Handler())
	}
	f := newFuzzWorld(t, e)

	var routes []*echo.Route
	for _, r := range e.Routes() {
		if r.Method != echo.RouteNotFound {
			routes = append(routes, r)
		}
	}
	slices.SortFunc(routes, func(a, b *echo.Route) int { return strings.Compare(a.Method+a.Path, b.Method+b.Path) })
	if len(routes) < 30 {
		t.Fatalf("echo serves %d routes; the API has more than 30", len(routes))
	}

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("COFFER_FUZZ_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (COFFER_FUZZ_SEED=%d repeats this run)", seed, seed)
	var (
		sent     atomic.Int64
		poisoned atomic.Int64
		mu       sync.Mutex
		failures []string
		byStatus = map[int]int{}
		perRoute = map[string]int{}
	)
	deadline := time.Now().Add(fuzzBudget)
	const workers = 4
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for i := w; i < fuzzRequests && time.Now().Before(deadline) && t.Context().Err() == nil; i += workers {
				r := routes[i%len(routes)]
				req, dump := f.request(rng, r)
				rec := httptest.NewRecorder()
				panicked := ""
				func() {
					defer func() {
						if p := recover(); p != nil {
							panicked = fmt.Sprint(p)
						}
					}()
					e.ServeHTTP(rec, req)
				}()
				sent.Add(1)
				mu.Lock()
				byStatus[rec.Code]++
				perRoute[r.Method+" "+r.Path]++
				// A message the email function can never handle is retried
				// until Service Bus dead-letters it: the documented 500.
				poison := rec.Code == http.StatusInternalServerError && r.Path == "/"+triggers.FuncSendAlertEmail &&
					strings.Contains(rec.Body.String(), "poison message")
				if poison {
					poisoned.Add(1)
				}
				if panicked != "" || rec.Code >= 500 && !poison {
					failures = append(failures, fmt.Sprintf("%d %s (panic: %q)\n%s\n<- %s", rec.Code, r.Method+" "+r.Path, panicked, dump, bytes.TrimSpace(rec.Body.Bytes())))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests over %d routes; answers by status: %v (%d of the 500s poison messages); %d emails sent",
		sent.Load(), len(routes), byStatus, poisoned.Load(), len(sink.Messages()))
	if sent.Load() < fuzzRequests {
		t.Errorf("only %d of %d requests were sent within %s", sent.Load(), fuzzRequests, fuzzBudget)
	}
	for _, r := range routes {
		if perRoute[r.Method+" "+r.Path] == 0 {
			t.Errorf("%s %s got no request", r.Method, r.Path)
		}
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the control plane logged a panic:\n%s", firstLines(logs.String(), "panic", 3))
	}
	if len(failures) > 0 {
		slices.Sort(failures)
		t.Errorf("%d requests panicked or got a 5xx (seed %d); the first ones:\n%s\nthe control plane logged:\n%s",
			len(failures), seed, strings.Join(failures[:min(5, len(failures))], "\n\n"), firstLines(logs.String(), "ERROR", 5))
	}
}

// fuzzWorld is a vault, a machine and the IDs the generator fills paths with.
type fuzzWorld struct {
	vaultID, machineID, machineName, jobID, pointID, alertID, credID, secret string
	key                                                                      ed25519.PrivateKey
	pub                                                                      ed25519.PublicKey
	otherKey                                                                 ed25519.PrivateKey
}

func newFuzzWorld(t *testing.T, e *echo.Echo) *fuzzWorld {
	t.Helper()
	f := &fuzzWorld{}
	call := func(method, path string, in, out any, sign bool) {
		t.Helper()
		b, _ := json.Marshal(in)
		if in == nil {
			b = nil
		}
		req := httptest.NewRequest(method, wire.Version+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if sign {
			if err := reqsign.Sign(req, b, f.machineID, f.key, time.Now()); err != nil {
				t.Fatal(err)
			}
		} else {
			req.Header.Set("Authorization", "Bearer "+inproc.ContributorToken)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code >= 300 {
			t.Fatalf("set-up %s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		if out != nil {
			json.Unmarshal(rec.Body.Bytes(), out)
		}
	}
	var v wire.Vault
	call("POST", "/vaults", wire.NewVault{Name: "fuzz-" + strconv.FormatInt(time.Now().UnixNano(), 36), AlertRecipients: []string{"ops@fuzz.example"}}, &v, false)
	f.vaultID = v.ID
	p := policy.Default("UTC")
	p.Include = []string{"/srv/share"}
	call("PUT", "/vaults/"+v.ID+"/policies/office", p, nil, false)
	var cr wire.Credentials
	call("POST", "/vaults/"+v.ID+"/credentials", nil, &cr, false)
	f.credID, f.secret = cr.CredentialID, cr.Secret
	var err error
	if f.pub, f.key, err = reqsign.NewKey(); err != nil {
		t.Fatal(err)
	}
	if _, f.otherKey, err = reqsign.NewKey(); err != nil {
		t.Fatal(err)
	}
	f.machineName = "fuzz-01"
	var reg wire.Registration
	call("POST", "/register", wire.Register{VaultID: v.ID, CredentialID: cr.CredentialID, Secret: cr.Secret, MachineName: f.machineName,
		PublicKey: reqsign.EncodePublicKey(f.pub), OS: "linux"}, &reg, false)
	f.machineID = reg.MachineID
	call("PUT", "/vaults/"+v.ID+"/machines/"+f.machineID+"/policy", wire.AssignPolicy{Policy: "office"}, nil, false)
	var j wire.Job
	call("POST", "/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j, true)
	f.jobID = j.ID
	call("POST", "/agent/jobs/"+j.ID, wire.JobReport{Status: wire.StatusFailed, ErrorCode: "disk", Message: "disk gone"}, nil, true)
	var as []wire.Alert
	call("GET", "/vaults/"+v.ID+"/alerts", nil, &as, false)
	if len(as) > 0 {
		f.alertID = as[0].ID
	}
	f.pointID = strings.Repeat("ab", 32)
	return f
}

// nasty are path and query values a careless handler would mishandle.
var nasty = []string{
	"", " ", "..", "../..", "%2e%2e%2f", "x'y", "' or PartitionKey ne '", "a eq a", "%00", "\x00", "null", "undefined",
	"-1", "0", "99999999999999999999", "1e309", "NaN", "true", "[]", "{}", "é", "☃", "\xff\xfe", "a/b", "a\\b",
	strings.Repeat("a", 300), strings.Repeat("9", 5000), "$filter=true", "*", "?", "#", "%", "%zz", "CON", "nul.txt",
}

func (f *fuzzWorld) param(rng *rand.Rand, name string) string {
	if rng.IntN(10) < 7 {
		switch name {
		case "vault":
			return f.vaultID
		case "machine":
			if rng.IntN(4) == 0 {
				return f.machineName
			}
			return f.machineID
		case "policy":
			return "office"
		case "point":
			return f.pointID
		case "job":
			return f.jobID
		case "alert":
			return f.alertID
		}
	}
	return pick(rng, nasty)
}

// sampleBody is a valid body for a route, to mutate.
func (f *fuzzWorld) sampleBody(rng *rand.Rand, method, path string) any {
	p := policy.Default("Europe/London")
	p.Include = []string{"/srv/share", `C:\Data`}
	switch {
	case path == "/"+triggers.FuncSendAlertEmail:
		alert, _ := json.Marshal(wire.Alert{ID: strconv.Itoa(rng.IntN(1 << 30)), VaultID: f.vaultID, MachineID: f.machineID, MachineName: f.machineName,
			Severity: wire.SeverityCritical, Kind: wire.AlertJobFailed, Title: "Backup failed on " + f.machineName, Detail: "disk gone",
			Reported: "<a href=\"http://evil.example\">x</a>", RaisedAt: time.Now()})
		twice, _ := json.Marshal(string(alert)) // the host encodes string trigger data a second time
		return map[string]any{"Data": map[string]any{"message": string(twice)},
			"Metadata": map[string]any{"DeliveryCount": 1, "MessageId": `"` + strconv.Itoa(rng.IntN(1<<30)) + `"`,
				"sys": map[string]any{"MethodName": triggers.FuncSendAlertEmail, "UtcNow": time.Now().UTC()}}}
	case !strings.HasPrefix(path, wire.Version+"/"): // a timer
		now := time.Now().UTC()
		return map[string]any{
			"Data": map[string]any{"timer": map[string]any{
				"Schedule":       map[string]any{"AdjustForDST": true},
				"ScheduleStatus": map[string]any{"Last": now.Add(-time.Hour), "Next": now, "LastUpdated": now.Add(-time.Hour)},
				"IsPastDue":      rng.IntN(2) == 0,
			}},
			"Metadata": map[string]any{"sys": map[string]any{"MethodName": strings.TrimPrefix(path, "/"), "UtcNow": now}},
		}
	case path == "/api/v1/register":
		return wire.Register{VaultID: f.vaultID, CredentialID: f.credID, Secret: f.secret, MachineName: "fuzz-" + strconv.Itoa(rng.IntN(1000)),
			PublicKey: reqsign.EncodePublicKey(f.pub)}
	case path == "/api/v1/vaults" && method == "POST":
		return wire.NewVault{Name: "fuzz-v-" + strconv.Itoa(rng.IntN(1_000_000)), AlertRecipients: []string{"a@b.example"}}
	case method == "PATCH":
		off := rng.IntN(2) == 0
		return wire.VaultUpdate{SecurityFeatures: &off, AlertRecipients: &[]string{"x@y.example"}}
	case strings.HasSuffix(path, "/policies/:policy"):
		return p
	case strings.HasSuffix(path, "/machines/:machine/policy"):
		return wire.AssignPolicy{Policy: "office", PIN: "12345678"}
	case strings.HasSuffix(path, "/stop"):
		return wire.StopProtection{DeleteData: rng.IntN(2) == 0}
	case strings.HasSuffix(path, "/restore-grant"), strings.HasSuffix(path, "/restore-access"):
		return wire.RestoreGrant{Source: f.machineID}
	case strings.HasSuffix(path, "/agent/jobs") && method == "POST":
		return wire.NewJob{Type: pick(rng, []string{wire.JobBackup, wire.JobRestore, wire.JobDeleteData})}
	case strings.HasSuffix(path, "/agent/jobs/:job"):
		return wire.JobReport{Status: pick(rng, []string{wire.StatusInProgress, wire.StatusCompleted, wire.StatusFailed, wire.StatusCompletedWithWarnings}),
			Progress: wire.Progress{FilesDone: 3, FilesTotal: 9, BytesDone: 100}, Skipped: []wire.Skipped{{Path: "/x", Reason: "locked"}},
			Message: "<b>hi</b>", PointID: f.pointID}
	case strings.HasSuffix(path, "/agent/points") && method == "POST":
		return wire.NewPoint{ID: f.pointID, JobID: f.jobID}
	case strings.HasSuffix(path, "/retire-key"):
		return wire.RetireKey{Key: strings.Repeat("cd", 32), Replacement: strings.Repeat("ef", 32)}
	}
	return map[string]any{}
}

// body is a valid body, a mutation of it, or junk.
func (f *fuzzWorld) body(rng *rand.Rand, method, path string) []byte {
	valid, _ := json.Marshal(f.sampleBody(rng, method, path))
	switch n := rng.IntN(20); {
	case n < 6:
		return valid
	case n < 12: // a field removed, retyped or added
		var m map[string]any
		if json.Unmarshal(valid, &m) != nil || m == nil {
			m = map[string]any{}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		switch {
		case len(keys) > 0 && rng.IntN(3) == 0:
			delete(m, pick(rng, keys))
		case len(keys) > 0 && rng.IntN(2) == 0:
			m[pick(rng, keys)] = randomValue(rng, 0)
		default:
			m[pick(rng, append(keys, "unknownField", "PartitionKey", "__proto__"))] = randomValue(rng, 0)
		}
		b, _ := json.Marshal(m)
		return b
	case n < 15: // bytes flipped, cut or inserted
		b := slices.Clone(valid)
		for range 1 + rng.IntN(4) {
			if len(b) == 0 {
				break
			}
			switch i := rng.IntN(len(b)); rng.IntN(3) {
			case 0:
				b[i] = byte(rng.IntN(256))
			case 1:
				b = b[:i]
			default:
				b = slices.Insert(b, i, byte(rng.IntN(256)))
			}
		}
		return b
	case n < 16:
		return nil
	case n < 17:
		return []byte(strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000))
	case n < 18:
		return bytes.Repeat([]byte(`{"name":"x"}`), 1<<20/12+2) // over the 1 MiB limit
	case n < 19:
		return []byte(pick(rng, []string{"null", "[]", "0", `"x"`, "{}{}", `{"a":1}garbage`, "\xef\xbb\xbf{}", `{"name":"\ud800"}`}))
	default:
		b := make([]byte, rng.IntN(512))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
}

func randomValue(rng *rand.Rand, depth int) any {
	switch rng.IntN(9) {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return rng.NormFloat64() * 1e12
	case 3:
		return -1
	case 4:
		return strings.Repeat("x", rng.IntN(70_000))
	case 5:
		return pick(rng, nasty)
	case 6:
		if depth < 3 {
			return []any{randomValue(rng, depth+1), randomValue(rng, depth+1)}
		}
		return []any{}
	case 7:
		if depth < 3 {
			return map[string]any{"k": randomValue(rng, depth+1)}
		}
		return map[string]any{}
	}
	return "2026-13-45T99:99:99Z"
}

// request builds one request to route r and a dump that repeats it.
func (f *fuzzWorld) request(rng *rand.Rand, r *echo.Route) (*http.Request, string) {
	method := r.Method
	if rng.IntN(20) == 0 {
		method = pick(rng, []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
	}
	var path strings.Builder
	for seg := range strings.SplitSeq(r.Path, "/") {
		if seg == "" {
			continue
		}
		path.WriteByte('/')
		if name, ok := strings.CutPrefix(seg, ":"); ok {
			path.WriteString(url.PathEscape(f.param(rng, name)))
		} else {
			path.WriteString(seg)
		}
	}
	target := path.String()
	if rng.IntN(3) == 0 {
		q := url.Values{}
		for range 1 + rng.IntN(3) {
			q.Add(pick(rng, []string{"limit", "machine", "type", "status", "deleted", "severity", "kind", "acknowledged", "since", "continuation", "x"}),
				pick(rng, append(slices.Clone(nasty), "include", "10", "failed", "backup", "critical", "false", f.machineID)))
		}
		target += "?" + q.Encode()
	}
	var body []byte
	if method != "GET" && method != "HEAD" || rng.IntN(10) == 0 {
		body = f.body(rng, r.Method, r.Path)
	}
	req := httptest.NewRequest(method, "http://cp.example"+target, bytes.NewReader(body))
	if rng.IntN(10) > 0 {
		req.Header.Set("Content-Type", pick(rng, []string{"application/json", "application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"}))
	}
	if rng.IntN(5) == 0 {
		req.Header.Set(wire.PINHeader, pick(rng, []string{"12345678", "", "abc", strings.Repeat("1", 100)}))
	}
	if rng.IntN(6) == 0 {
		req.Header.Set("If-Match", pick(rng, []string{"*", `W/"x"`, "garbage"}))
	}
	f.authenticate(rng, req, body, strings.HasPrefix(r.Path, wire.Version+"/agent/"))
	var dump strings.Builder
	fmt.Fprintf(&dump, "-> %s %s\n", method, target)
	for k, vs := range req.Header {
		fmt.Fprintf(&dump, "   %s: %s\n", k, strings.Join(vs, ", "))
	}
	fmt.Fprintf(&dump, "   body (%d bytes): %.300q", len(body), body)
	return req, dump.String()
}

// authenticate signs or authorises a request, correctly or not.
func (f *fuzzWorld) authenticate(rng *rand.Rand, req *http.Request, body []byte, agentRoute bool) {
	n := rng.IntN(12)
	switch {
	case agentRoute && n < 7:
		n = 100 // mostly a valid signature, so agent handlers are reached
	case !agentRoute && n >= 6 && rng.IntN(3) > 0:
		n = 1 + rng.IntN(3) // mostly a valid role, so admin handlers are reached
	}
	switch n {
	case 0:
	case 1:
		req.Header.Set("Authorization", "Bearer "+inproc.ContributorToken)
	case 2:
		req.Header.Set("Authorization", "Bearer "+inproc.OperatorToken)
	case 3:
		req.Header.Set("Authorization", "Bearer "+inproc.ReaderToken)
	case 4:
		req.Header.Set("Authorization", pick(rng, []string{"Bearer ", "Bearer wrong", "Basic YTpi", "bearer " + inproc.ContributorToken, strings.Repeat("B", 9000)}))
	case 5:
		req.Header.Set("X-MS-CLIENT-PRINCIPAL", pick(rng, []string{"e30=", "not base64!", "eyJjbGFpbXMiOm51bGx9", strings.Repeat("A", 5000)}))
		req.Header.Set("Authorization", "Bearer "+inproc.ContributorToken)
	case 6: // a signature by another key
		reqsign.Sign(req, body, f.machineID, f.otherKey, time.Now())
	case 7: // a stale one
		reqsign.Sign(req, body, f.machineID, f.key, time.Now().Add(-time.Hour))
	case 8: // signature headers mangled
		reqsign.Sign(req, body, f.machineID, f.key, time.Now())
		for k := range req.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-coffer") && k != wire.PINHeader && rng.IntN(2) == 0 {
				req.Header.Set(k, pick(rng, nasty))
			}
		}
	case 9: // signed for another body
		reqsign.Sign(req, append(slices.Clone(body), ' '), f.machineID, f.key, time.Now())
	case 10: // an unknown machine
		reqsign.Sign(req, body, pick(rng, []string{"0000000000000000ffff", "x", "' or 1 eq 1"}), f.key, time.Now())
	default:
		reqsign.Sign(req, body, f.machineID, f.key, time.Now())
	}
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// firstLines returns the first n lines of s that contain what.
func firstLines(s, what string, n int) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, what) {
			out = append(out, line)
			if len(out) == n {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
