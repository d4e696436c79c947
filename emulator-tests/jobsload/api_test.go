package jobsload_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/functions/app"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Admin tokens of the test control plane.
const (
	apiContributor = inproc.ContributorToken
	apiOperator    = inproc.OperatorToken
	apiReader      = inproc.ReaderToken
)

const (
	apiAgents       = 200
	apiProgress     = 10 // in_progress reports per agent, then one completed
	registerWorkers = 16 // registrations in flight at once
	hotAgents       = 5  // agents that each hammer one job of their own
	hotConcurrent   = 40 // concurrent reports per hot agent
	maxRetries      = 8  // 503s an agent retries before it gives up
)

// warnLog keeps the control plane's warnings and errors so the test can
// show what went wrong inside it.
type warnLog struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (w *warnLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnLog) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w *warnLog) WithGroup(string) slog.Handler                { return w }
func (w *warnLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if len(w.first) < 10 {
		w.first = append(w.first, b.String())
	}
	return nil
}

func (w *warnLog) report(t *testing.T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("control plane logged %d warnings/errors", w.n)
	for _, l := range w.first {
		t.Logf("  %s", l)
	}
}

// apiCP is the control plane running in this process.
type apiCP struct {
	url                string
	hc                 *http.Client
	contrib, op, reads *cpclient.Client
	log                *warnLog
	app                *app.App
}

func startCP(t *testing.T, ctx context.Context) *apiCP {
	t.Helper()
	emulators(t)
	wl := &warnLog{}
	// Anything that logs through slog's default logger is kept too, and
	// kept out of the test output.
	prev := slog.Default()
	slog.SetDefault(slog.New(wl))
	t.Cleanup(func() { slog.SetDefault(prev) })
	a := inproc.New(t, inproc.Env(emu.ConnectionString(), sb.ConnectionString()), time.Now, slog.New(wl))
	srv := httptest.NewServer(a.Handler())
	// One connection per agent, as 200 separate machines would hold: the
	// default of 2 idle connections per host would make the test measure
	// TCP set-up instead of the control plane.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * apiAgents,
		MaxIdleConnsPerHost: 4 * apiAgents,
		IdleConnTimeout:     90 * time.Second,
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	hc := &http.Client{Transport: tr}
	return &apiCP{url: srv.URL, hc: hc, log: wl, app: a,
		contrib: &cpclient.Client{BaseURL: srv.URL, HTTP: hc, Token: apiContributor},
		op:      &cpclient.Client{BaseURL: srv.URL, HTTP: hc, Token: apiOperator},
		reads:   &cpclient.Client{BaseURL: srv.URL, HTTP: hc, Token: apiReader},
	}
}

// phase counts one phase's calls: latency of each logical call (retries
// included), 503 retries, and the first failures.
type phase struct {
	name    string
	lat     latencies
	retries atomic.Int64
	mu      sync.Mutex
	errs    []error
	start   time.Time
	wall    time.Duration
}

func newPhase(name string) *phase { return &phase{name: name} }

func (p *phase) begin() { p.start = time.Now() }
func (p *phase) end()   { p.wall = time.Since(p.start) }

func (p *phase) fail(err error) {
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
}

// do calls the API, retrying 503 unavailable answers with a short jittered
// backoff as the agent does. It returns the last error.
func (p *phase) do(ctx context.Context, c *cpclient.Client, method, path string, in, out any) error {
	t0 := time.Now()
	defer func() { p.lat.add(time.Since(t0)) }()
	for attempt := 0; ; attempt++ {
		_, err := c.Do(ctx, method, path, in, out)
		if cpclient.Code(err) != wire.CodeUnavailable || attempt == maxRetries {
			return err
		}
		p.retries.Add(1)
		d := min(50*time.Millisecond<<attempt, 2*time.Second)
		select {
		case <-time.After(d/2 + mrand.N(d/2)):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
	}
}

// check fails the test with the phase's first errors.
func (p *phase) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) == 0 {
		return
	}
	for _, err := range p.errs[:min(len(p.errs), 10)] {
		t.Errorf("%s: %v", p.name, err)
	}
	t.Fatalf("%s: %d calls failed", p.name, len(p.errs))
}

func (p *phase) log(t *testing.T, unit string) {
	t.Helper()
	n := len(p.lat.d)
	t.Logf("%-22s %5d %-13s in %8v = %6.0f/s; p50 %8v p95 %8v max %8v; %d retries (503)",
		p.name, n, unit, p.wall.Round(time.Millisecond), float64(n)/p.wall.Seconds(),
		p.lat.pct(0.50).Round(100*time.Microsecond), p.lat.pct(0.95).Round(100*time.Microsecond),
		p.lat.pct(1).Round(100*time.Microsecond), p.retries.Load())
}

// apiSent is agent i's k-th progress (k from 1 to apiProgress+1): every
// counter grows with k.
func apiSent(i, k int) wire.Progress {
	return wire.Progress{FilesDone: int64(k * (i + 7)), FilesTotal: int64(1000 * (i + 1)),
		BytesDone: int64(k*(i+1)) << 16, BytesTotal: int64(apiProgress+1) << 30, BytesUploaded: int64(k) << 18}
}

// hotSent is a hot agent's k-th concurrent report (k from 0): each counter
// peaks at a different k, so only a per-counter maximum gets them all.
func hotSent(k int) wire.Progress {
	return wire.Progress{
		FilesDone:     int64(k + 1),                          // peaks at the last
		FilesTotal:    int64(5000 - k),                       // peaks at the first
		BytesDone:     int64((k*7)%hotConcurrent+1) << 20,    // peaks in the middle
		BytesTotal:    1 << 40,                               // the same everywhere
		BytesUploaded: int64((k*13+5)%hotConcurrent+1) << 19, // elsewhere again
	}
}

func hotMax() wire.Progress {
	var m wire.Progress
	for k := range hotConcurrent {
		p := hotSent(k)
		m = wire.Progress{FilesDone: max(m.FilesDone, p.FilesDone), FilesTotal: max(m.FilesTotal, p.FilesTotal),
			BytesDone: max(m.BytesDone, p.BytesDone), BytesTotal: max(m.BytesTotal, p.BytesTotal),
			BytesUploaded: max(m.BytesUploaded, p.BytesUploaded)}
	}
	return m
}

func hotPath(h, k int) string { return fmt.Sprintf("/srv/hot-%d/db/locked-%02d.mdf", h, k) }

// 200 agents register, then all at once create a backup job and report on
// it through the signed agent API; the admin API then shows every job
// completed with the last counters sent. Five agents also fire 40 reports
// at once on one job each, and lose none.
func TestTwoHundredAgentsReportThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: 200 agents against the emulators")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cp := startCP(t, ctx)
	defer cp.log.report(t)

	var v wire.Vault
	if _, err := cp.contrib.Do(ctx, "POST", "/api/v1/vaults", wire.NewVault{Name: "jobs-load-api"}, &v); err != nil {
		t.Fatal(err)
	}
	var cr wire.Credentials
	if _, err := cp.op.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/credentials", nil, &cr); err != nil {
		t.Fatal(err)
	}

	// Registration, 16 at a time.
	agents := make([]*cpclient.Client, apiAgents)
	reg := newPhase("register")
	anon := &cpclient.Client{BaseURL: cp.url, HTTP: cp.hc}
	next := make(chan int)
	var wg sync.WaitGroup
	reg.begin()
	for range registerWorkers {
		wg.Go(func() {
			for i := range next {
				pub, priv, err := reqsign.NewKey()
				if err != nil {
					reg.fail(err)
					continue
				}
				var r wire.Registration
				err = reg.do(ctx, anon, "POST", "/api/v1/register", wire.Register{VaultID: cr.VaultID, CredentialID: cr.CredentialID,
					Secret: cr.Secret, MachineName: fmt.Sprintf("branch-pc-%03d", i), PublicKey: reqsign.EncodePublicKey(pub), OS: "linux"}, &r)
				if err != nil {
					reg.fail(fmt.Errorf("machine %d: %w", i, err))
					continue
				}
				agents[i] = &cpclient.Client{BaseURL: cp.url, HTTP: cp.hc, MachineID: r.MachineID, Key: priv}
			}
		})
	}
	for i := range apiAgents {
		next <- i
	}
	close(next)
	wg.Wait()
	reg.end()
	reg.log(t, "registrations")
	reg.check(t)

	// Every agent at once: create a job, report progress, complete it.
	creates, reports := newPhase("agent create job"), newPhase("agent progress+final")
	jobIDs := make([]string, apiAgents)
	finishedOnRetry := atomic.Int64{}
	gate := make(chan struct{})
	for i, ag := range agents {
		wg.Go(func() {
			<-gate
			var j wire.Job
			if err := creates.do(ctx, ag, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j); err != nil {
				creates.fail(fmt.Errorf("agent %d: %w", i, err))
				return
			}
			jobIDs[i] = j.ID
			for k := 1; k <= apiProgress+1; k++ {
				r := wire.JobReport{Status: wire.StatusInProgress, Progress: apiSent(i, k)}
				if k == apiProgress+1 {
					r.Status = wire.StatusCompleted
				}
				var got wire.Job
				err := reports.do(ctx, ag, "POST", "/api/v1/agent/jobs/"+j.ID, r, &got)
				if k == apiProgress+1 && cpclient.Code(err) == wire.CodeJobFinished {
					// A retried final report whose first try landed; the
					// admin check below shows whether it did.
					finishedOnRetry.Add(1)
					err = nil
				}
				if err != nil {
					reports.fail(fmt.Errorf("agent %d report %d: %w", i, k, err))
					return
				}
			}
		})
	}
	w0, c0 := cp.app.Jobs.ReportWrites(), cp.app.Jobs.Conflicts()
	creates.begin()
	reports.begin()
	close(gate)
	wg.Wait()
	creates.end()
	reports.end()
	creates.log(t, "creates")
	reports.log(t, "reports")
	t.Logf("(both over the same %v: creates and reports run together; %d final reports answered job_finished after a retry)",
		reports.wall.Round(time.Millisecond), finishedOnRetry.Load())
	t.Logf("(job store: %d report batches written, %d ETag conflicts retried)", cp.app.Jobs.ReportWrites()-w0, cp.app.Jobs.Conflicts()-c0)
	creates.check(t)
	reports.check(t)

	// Contention: a few agents each fire many reports at once on one job.
	hotIDs := make([]string, hotAgents)
	for h := range hotAgents {
		var j wire.Job
		if _, err := agents[h].Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j); err != nil {
			t.Fatal(err)
		}
		hotIDs[h] = j.ID
	}
	hot := newPhase("hot jobs (5x40)")
	w0, c0 = cp.app.Jobs.ReportWrites(), cp.app.Jobs.Conflicts()
	gate = make(chan struct{})
	for h := range hotAgents {
		for k := range hotConcurrent {
			wg.Go(func() {
				<-gate
				r := wire.JobReport{Status: wire.StatusInProgress, Progress: hotSent(k),
					Skipped: []wire.Skipped{{Path: hotPath(h, k), Reason: "locked by another process"}}}
				if err := hot.do(ctx, agents[h], "POST", "/api/v1/agent/jobs/"+hotIDs[h], r, nil); err != nil {
					hot.fail(fmt.Errorf("hot agent %d report %d: %w", h, k, err))
				}
			})
		}
	}
	hot.begin()
	close(gate)
	wg.Wait()
	hot.end()
	hot.log(t, "reports")
	t.Logf("(job store: %d report batches written, %d ETag conflicts retried)", cp.app.Jobs.ReportWrites()-w0, cp.app.Jobs.Conflicts()-c0)
	hot.check(t)
	for h := range hotAgents {
		var got wire.Job
		err := hot.do(ctx, agents[h], "POST", "/api/v1/agent/jobs/"+hotIDs[h], wire.JobReport{Status: wire.StatusCompletedWithWarnings}, &got)
		if err != nil {
			t.Fatalf("hot agent %d final report: %v", h, err)
		}
		if got.Status != wire.StatusCompletedWithWarnings || got.Progress != hotMax() || len(got.Skipped) != hotConcurrent {
			t.Errorf("hot job %d answered %s %+v with %d skipped, want %s %+v with %d",
				h, got.Status, got.Progress, len(got.Skipped), wire.StatusCompletedWithWarnings, hotMax(), hotConcurrent)
		}
	}

	// The admin's view: the list, then every job on its own.
	list := newPhase("admin list")
	var js []wire.Job
	list.begin()
	err := list.do(ctx, cp.reads, "GET", "/api/v1/vaults/"+v.ID+"/jobs?limit=1000", nil, &js)
	list.end()
	if err != nil {
		t.Fatal(err)
	}
	list.log(t, "lists")
	byID := map[string]wire.Job{}
	types := map[string]int{}
	for _, j := range js {
		byID[j.ID] = j
		types[j.Type]++
	}
	if types[wire.JobBackup] != apiAgents+hotAgents || types[wire.JobRegister] != apiAgents || len(js) != 2*apiAgents+hotAgents {
		t.Errorf("the vault lists %d jobs %v, want %d backup and %d register", len(js), types, apiAgents+hotAgents, apiAgents)
	}

	wantOwn := func(i int, j wire.Job) error {
		want := apiSent(i, apiProgress+1)
		if j.Status != wire.StatusCompleted || j.Progress != want || j.EndedAt == nil || len(j.Skipped) != 0 || j.MachineID != agents[i].MachineID {
			return fmt.Errorf("agent %d's job %s: %s %+v (ended %v, %d skipped), want completed %+v",
				i, j.ID, j.Status, j.Progress, j.EndedAt, len(j.Skipped), want)
		}
		return nil
	}
	wantHot := func(h int, j wire.Job) error {
		have := map[string]bool{}
		for _, s := range j.Skipped {
			if have[s.Path] {
				return fmt.Errorf("hot job %d lists %s twice", h, s.Path)
			}
			have[s.Path] = true
		}
		for k := range hotConcurrent {
			if !have[hotPath(h, k)] {
				return fmt.Errorf("hot job %d lost skipped file %s (has %d)", h, hotPath(h, k), len(j.Skipped))
			}
		}
		if j.Status != wire.StatusCompletedWithWarnings || j.Progress != hotMax() || len(j.Skipped) != hotConcurrent {
			return fmt.Errorf("hot job %d: %s %+v with %d skipped, want completed_with_warnings %+v with %d",
				h, j.Status, j.Progress, len(j.Skipped), hotMax(), hotConcurrent)
		}
		return nil
	}
	for i, id := range jobIDs {
		if err := wantOwn(i, byID[id]); err != nil {
			t.Errorf("listed: %v", err)
		}
	}
	for h, id := range hotIDs {
		if err := wantHot(h, byID[id]); err != nil {
			t.Errorf("listed: %v", err)
		}
	}

	gets := newPhase("admin get job")
	type one struct {
		machine, id string
		check       func(wire.Job) error
	}
	todo := make(chan one)
	gets.begin()
	for range registerWorkers {
		wg.Go(func() {
			for o := range todo {
				var j wire.Job
				if err := gets.do(ctx, cp.reads, "GET", "/api/v1/vaults/"+v.ID+"/machines/"+o.machine+"/jobs/"+o.id, nil, &j); err != nil {
					gets.fail(fmt.Errorf("job %s: %w", o.id, err))
					continue
				}
				if err := o.check(j); err != nil {
					gets.fail(err)
				}
			}
		})
	}
	for i, id := range jobIDs {
		todo <- one{agents[i].MachineID, id, func(j wire.Job) error { return wantOwn(i, j) }}
	}
	for h, id := range hotIDs {
		todo <- one{agents[h].MachineID, id, func(j wire.Job) error { return wantHot(h, j) }}
	}
	close(todo)
	wg.Wait()
	gets.end()
	gets.log(t, "gets")
	gets.check(t)
}
