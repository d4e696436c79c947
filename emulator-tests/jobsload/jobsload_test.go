// Package jobsload is the load test of job tracking: 200 agents report job
// progress at once through several control-plane instances, against
// Azurite, and no update may be lost.
package jobsload_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/emulator-tests/servicebus"
	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Azurite, and the Service Bus emulator the in-process control plane of
// TestTwoHundredAgentsReportThroughTheAPI needs, start with the first test
// that calls emulators.
var (
	emus ondemand.Emulators
	emu  *azurite.Azurite
	sb   *servicebus.Emulator
)

func TestMain(m *testing.M) { os.Exit(emus.Main(m)) }

func emulators(t *testing.T) {
	t.Helper()
	emus.Start(t)
	emu, sb = emus.Azurite, emus.ServiceBus
}

const (
	agents    = 200
	progress  = 20 // progress reports per agent on its own job, then one outcome
	instances = 4  // control-plane instances (Functions scaled out), each its own Store and connections
	hotJobs   = 4  // jobs all agents report on in the contention phase
	hotSends  = 10 // reports per agent in the contention phase
	vault     = "vault-load"
)

// newInstances returns Stores on one table, as separate control-plane
// processes would be. Each keeps enough idle connections for its share of
// the agents: the default of 10 per host would make most requests open a
// new connection.
func newInstances(t *testing.T) []*jobs.Store {
	t.Helper()
	emulators(t)
	var out []*jobs.Store
	for i := range instances {
		tr := &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        agents,
			MaxIdleConnsPerHost: agents,
			IdleConnTimeout:     90 * time.Second,
		}
		t.Cleanup(tr.CloseIdleConnections)
		svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString(), &aztables.ClientOptions{
			ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: tr}, Retry: policy.RetryOptions{MaxRetries: 3}},
		})
		if err != nil {
			t.Fatal(err)
		}
		s := jobs.New(svc.NewClient(jobs.TableName), nil)
		if i == 0 {
			if err := s.EnsureTable(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, s)
	}
	return out
}

// latencies collects one duration per call from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d ...time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

func (l *latencies) pct(p float64) time.Duration {
	slices.Sort(l.d)
	if len(l.d) == 0 {
		return 0
	}
	return l.d[min(len(l.d)-1, int(p*float64(len(l.d))))]
}

// counters sums the Stores' figures.
func counters(ss []*jobs.Store) (writes, conflicts int64) {
	for _, s := range ss {
		writes += s.ReportWrites()
		conflicts += s.Conflicts()
	}
	return
}

func logFigures(t *testing.T, phase string, n int, wall time.Duration, l *latencies, ss []*jobs.Store, w0, c0 int64) {
	t.Helper()
	w, c := counters(ss)
	t.Logf("%s: %d reports in %v = %.0f reports/s; latency p50 %v p95 %v p99 %v max %v; %d table writes, %d ETag conflicts retried",
		phase, n, wall.Round(time.Millisecond), float64(n)/wall.Seconds(),
		l.pct(0.50).Round(10*time.Microsecond), l.pct(0.95).Round(10*time.Microsecond),
		l.pct(0.99).Round(10*time.Microsecond), l.pct(1).Round(10*time.Microsecond), w-w0, c-c0)
}

// 200 concurrent agents reporting job progress lose no update.
func TestTwoHundredAgentsLoseNoUpdate(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ss := newInstances(t)

	t.Run("each on its own job", func(t *testing.T) {
		ownJobs(t, ctx, ss)
	})
	t.Run("all on a few jobs", func(t *testing.T) {
		sharedJobs(t, ctx, ss)
	})
}

// final is the outcome agent i sends, and the progress it ends with.
func final(i int) wire.JobReport {
	p := sent(i, progress+1)
	switch i % 4 {
	case 0:
		return wire.JobReport{Status: wire.StatusCompleted, Progress: p, PointID: fmt.Sprintf("point-%d", i)}
	case 1:
		return wire.JobReport{Status: wire.StatusCompletedWithWarnings, Progress: p,
			Skipped: []wire.Skipped{{Path: fmt.Sprintf("/srv/%d/locked.db", i), Reason: "locked by another process"}}}
	case 2:
		return wire.JobReport{Status: wire.StatusFailed, Progress: p, ErrorCode: "disk_full", Message: "no space left on the cache volume"}
	default:
		return wire.JobReport{Status: wire.StatusCancelled, Progress: p, Message: "cancelled by the user"}
	}
}

// sent is agent i's k-th progress: every counter grows with k.
func sent(i, k int) wire.Progress {
	return wire.Progress{FilesDone: int64(k * (i + 1)), FilesTotal: int64(100 * (i + 1)),
		BytesDone: int64(k) << 20, BytesTotal: int64(progress+1) << 20, BytesUploaded: int64(k) << 19}
}

func ownJobs(t *testing.T, ctx context.Context, ss []*jobs.Store) {
	machine := func(i int) string { return fmt.Sprintf("machine-%03d", i) }
	ids := make([]string, agents)
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	var creates latencies
	start := time.Now()
	for i := range agents {
		wg.Go(func() {
			t0 := time.Now()
			j, err := ss[i%instances].Create(ctx, vault, machine(i), "Branch PC "+machine(i), wire.JobBackup)
			creates.add(time.Since(t0))
			if err != nil {
				errs <- err
				return
			}
			ids[i] = j.ID
		})
	}
	wg.Wait()
	wall := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("creates: %d in %v = %.0f/s; latency p50 %v p95 %v", agents, wall.Round(time.Millisecond), agents/wall.Seconds(),
		creates.pct(0.5).Round(10*time.Microsecond), creates.pct(0.95).Round(10*time.Microsecond))

	errs = make(chan error, agents)
	var reports latencies
	w0, c0 := counters(ss)
	start = time.Now()
	for i := range agents {
		wg.Go(func() {
			var mine []time.Duration
			for k := 1; k <= progress+1; k++ {
				r := wire.JobReport{Status: wire.StatusInProgress, Progress: sent(i, k)}
				if k == progress+1 {
					r = final(i)
				}
				// Consecutive requests of one agent land on any instance.
				t0 := time.Now()
				_, err := ss[(i+k)%instances].Report(ctx, vault, machine(i), ids[i], r)
				mine = append(mine, time.Since(t0))
				if err != nil {
					errs <- fmt.Errorf("agent %d report %d: %w", i, k, err)
					return
				}
			}
			reports.add(mine...)
		})
	}
	wg.Wait()
	wall = time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	logFigures(t, "own jobs", agents*(progress+1), wall, &reports, ss, w0, c0)

	list, err := ss[0].List(ctx, vault, jobs.Filter{Limit: jobs.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != agents {
		t.Fatalf("the vault lists %d jobs, want %d", len(list), agents)
	}
	byID := map[string]wire.Job{}
	for _, j := range list {
		byID[j.ID] = j
	}
	for i := range agents {
		got, want := byID[ids[i]], final(i)
		if got.Status != want.Status || got.Progress != want.Progress || got.ErrorCode != want.ErrorCode ||
			got.Message != want.Message || got.PointID != want.PointID || got.EndedAt == nil ||
			len(got.Skipped) != len(want.Skipped) || len(want.Skipped) > 0 && got.Skipped[0] != want.Skipped[0] {
			t.Errorf("agent %d's job:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func sharedJobs(t *testing.T, ctx context.Context, ss []*jobs.Store) {
	hot := make([]wire.Job, hotJobs)
	for h := range hot {
		j, err := ss[0].Create(ctx, vault, fmt.Sprintf("hot-%d", h), "", wire.JobBackup)
		if err != nil {
			t.Fatal(err)
		}
		hot[h] = j
	}
	// Agent g sends FilesDone g*hotSends+k to job g%hotJobs, so each job's
	// maximum is known; each report names a path of its own plus one all
	// agents share.
	path := func(g, k int) string { return fmt.Sprintf("/data/agent-%03d/file-%02d", g, k) }
	var wg sync.WaitGroup
	errs := make(chan error, agents*hotSends)
	var reports latencies
	w0, c0 := counters(ss)
	start := time.Now()
	for g := range agents {
		wg.Go(func() {
			j := hot[g%hotJobs]
			var mine []time.Duration
			for k := range hotSends {
				n := int64(g*hotSends + k)
				t0 := time.Now()
				_, err := ss[(g+k)%instances].Report(ctx, vault, j.MachineID, j.ID, wire.JobReport{
					Status:   wire.StatusInProgress,
					Progress: wire.Progress{FilesDone: n, FilesTotal: 10_000 + n, BytesDone: n << 20, BytesTotal: 1 << 40, BytesUploaded: n << 19},
					Skipped:  []wire.Skipped{{Path: path(g, k), Reason: "locked"}, {Path: "/data/shared.lock", Reason: "locked"}},
				})
				mine = append(mine, time.Since(t0))
				if err != nil {
					errs <- fmt.Errorf("agent %d report %d: %w", g, k, err)
					return
				}
			}
			reports.add(mine...)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	logFigures(t, "shared jobs", agents*hotSends, wall, &reports, ss, w0, c0)

	for h, j := range hot {
		got, err := ss[h%instances].Report(ctx, vault, j.MachineID, j.ID, wire.JobReport{Status: wire.StatusCompletedWithWarnings})
		if err != nil {
			t.Fatal(err)
		}
		// The last agent sending to job h is the one with the largest g.
		gMax := agents - hotJobs + h
		n := int64(gMax*hotSends + hotSends - 1)
		want := wire.Progress{FilesDone: n, FilesTotal: 10_000 + n, BytesDone: n << 20, BytesTotal: 1 << 40, BytesUploaded: n << 19}
		if got.Status != wire.StatusCompletedWithWarnings || got.Progress != want {
			t.Errorf("hot job %d: %s %+v, want completed_with_warnings %+v", h, got.Status, got.Progress, want)
		}
		have := map[string]bool{}
		for _, s := range got.Skipped {
			if have[s.Path] {
				t.Errorf("hot job %d lists %s twice", h, s.Path)
			}
			have[s.Path] = true
		}
		if wantN := agents/hotJobs*hotSends + 1; len(got.Skipped) != wantN {
			t.Errorf("hot job %d lists %d skipped files, want %d", h, len(got.Skipped), wantN)
		}
		for g := h; g < agents; g += hotJobs {
			for k := range hotSends {
				if !have[path(g, k)] {
					t.Fatalf("hot job %d lost skipped file %s", h, path(g, k))
				}
			}
		}
		if _, err := ss[0].Report(ctx, vault, j.MachineID, j.ID, wire.JobReport{Status: wire.StatusInProgress}); !errors.Is(err, jobs.ErrFinished) {
			t.Errorf("hot job %d took a report after its end: %v", h, err)
		}
	}
}
