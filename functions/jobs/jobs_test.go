package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/shared/clocktest"
	"github.com/coffer-backup/coffer/shared/wire"
)

var emus ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emus.Main(m)) }

// emulator starts Azurite on first use; under -short it skips t.
func emulator(t testing.TB) *azurite.Azurite {
	t.Helper()
	return emus.StartAzurite(t)
}

var tableSeq atomic.Int64

// newStore gives each test its own table.
func newStore(t *testing.T) (*Store, *clocktest.Fake) {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(emulator(t).ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	s := New(svc.NewClient(fmt.Sprintf("jobs%d", tableSeq.Add(1))), c.Now)
	if err := s.EnsureTable(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(t.Context()); err != nil {
		t.Fatalf("EnsureTable on an existing table: %v", err)
	}
	return s, c
}

func mustCreate(t *testing.T, s *Store, vault, machine, typ string) wire.Job {
	t.Helper()
	j, err := s.Create(t.Context(), vault, machine, machine+" name", typ)
	if err != nil {
		t.Fatalf("create %s job on %s: %v", typ, machine, err)
	}
	return j
}

func mustReport(t *testing.T, s *Store, j wire.Job, r wire.JobReport) wire.Job {
	t.Helper()
	got, err := s.Report(t.Context(), j.VaultID, j.MachineID, j.ID, r)
	if err != nil {
		t.Fatalf("report %+v on job %s: %v", r, j.ID, err)
	}
	return got
}

func ids(js []wire.Job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.ID
	}
	return out
}

func TestCreateReportGetListRoundTrip(t *testing.T) {
	s, c := newStore(t)
	ctx := t.Context()
	start := c.Now()
	j, err := s.Create(ctx, "vault-1", "machine-1", "Branch PC ☃", wire.JobBackup)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != wire.StatusInProgress || !j.StartedAt.Equal(start) || !j.UpdatedAt.Equal(start) || j.EndedAt != nil ||
		j.VaultID != "vault-1" || j.MachineID != "machine-1" || j.MachineName != "Branch PC ☃" || j.Type != wire.JobBackup {
		t.Fatalf("created job = %+v", j)
	}

	c.Advance(time.Minute)
	got := mustReport(t, s, j, wire.JobReport{Status: wire.StatusInProgress,
		Progress: wire.Progress{FilesDone: 10, FilesTotal: 100, BytesDone: 1 << 20, BytesTotal: 1 << 30, BytesUploaded: 1 << 19},
		Skipped:  []wire.Skipped{{Path: `C:\Users\a\ntuser.dat`, Reason: "locked"}},
		Message:  "scanning",
	})
	if !got.UpdatedAt.Equal(start.Add(time.Minute)) || got.Progress.FilesDone != 10 || len(got.Skipped) != 1 {
		t.Fatalf("after progress: %+v", got)
	}

	c.Advance(time.Minute)
	end := c.Now()
	got = mustReport(t, s, j, wire.JobReport{Status: wire.StatusCompletedWithWarnings,
		Progress: wire.Progress{FilesDone: 100, FilesTotal: 100, BytesDone: 1 << 30, BytesTotal: 1 << 30, BytesUploaded: 1 << 29},
		Skipped:  []wire.Skipped{{Path: "/home/a/.cache/lock", Reason: "permission denied"}, {Path: "/home/a/日本語/😀.txt", Reason: "name not representable"}},
		Message:  "done", PointID: "point-1",
	})
	want := wire.Job{
		ID: j.ID, VaultID: "vault-1", MachineID: "machine-1", MachineName: "Branch PC ☃", Type: wire.JobBackup,
		Status: wire.StatusCompletedWithWarnings, StartedAt: start, UpdatedAt: end, EndedAt: &end,
		Progress: wire.Progress{FilesDone: 100, FilesTotal: 100, BytesDone: 1 << 30, BytesTotal: 1 << 30, BytesUploaded: 1 << 29},
		Skipped: []wire.Skipped{{Path: `C:\Users\a\ntuser.dat`, Reason: "locked"}, {Path: "/home/a/.cache/lock", Reason: "permission denied"},
			{Path: "/home/a/日本語/😀.txt", Reason: "name not representable"}},
		Message: "done", PointID: "point-1",
	}
	assertJob(t, "report", got, want)

	read, err := s.Get(ctx, "vault-1", "machine-1", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertJob(t, "get", read, want)

	list, err := s.List(ctx, "vault-1", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("list = %d jobs, want 1", len(list))
	}
	assertJob(t, "list", list[0], want)
}

func assertJob(t *testing.T, what string, got, want wire.Job) {
	t.Helper()
	if (got.EndedAt == nil) != (want.EndedAt == nil) || got.EndedAt != nil && !got.EndedAt.Equal(*want.EndedAt) {
		t.Fatalf("%s: EndedAt = %v, want %v", what, got.EndedAt, want.EndedAt)
	}
	if !got.StartedAt.Equal(want.StartedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("%s: times = %v, %v; want %v, %v", what, got.StartedAt, got.UpdatedAt, want.StartedAt, want.UpdatedAt)
	}
	got.EndedAt, want.EndedAt = nil, nil
	got.StartedAt, want.StartedAt, got.UpdatedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func TestListFiltersNewestFirst(t *testing.T) {
	s, c := newStore(t)
	ctx := t.Context()
	t0 := c.Now()
	// Six jobs a minute apart on three machines; "vault-1-x" and "vault-10"
	// share vault-1's prefix and must never show up in its lists.
	var all []wire.Job // oldest first
	for i, m := range []struct{ machine, typ string }{
		{"m1", wire.JobRegister}, {"m2", wire.JobBackup}, {"m1", wire.JobBackup},
		{"m3", wire.JobRestore}, {"m2", wire.JobBackup}, {"m1", wire.JobBackup},
	} {
		c.Advance(time.Minute)
		j := mustCreate(t, s, "vault-1", m.machine, m.typ)
		if i%2 == 0 {
			j = mustReport(t, s, j, wire.JobReport{Status: wire.StatusCompleted})
		}
		all = append(all, j)
	}
	for _, v := range []string{"vault-1-x", "vault-10", "vault"} {
		mustCreate(t, s, v, "m1", wire.JobBackup)
	}
	newest := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, all[i].ID)
		}
		return out
	}
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) } // job i started at at(i+1)

	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, newest(5, 4, 3, 2, 1, 0)},
		{"machine", Filter{MachineID: "m1"}, newest(5, 2, 0)},
		{"machine none", Filter{MachineID: "m9"}, nil},
		{"type", Filter{Type: wire.JobBackup}, newest(5, 4, 2, 1)},
		{"status", Filter{Status: wire.StatusCompleted}, newest(4, 2, 0)},
		{"running", Filter{Status: wire.StatusInProgress}, newest(5, 3, 1)},
		{"machine type status", Filter{MachineID: "m2", Type: wire.JobBackup, Status: wire.StatusCompleted}, newest(4)},
		{"since inclusive", Filter{Since: at(4)}, newest(5, 4, 3)},
		{"until exclusive", Filter{Until: at(3)}, newest(1, 0)},
		{"window", Filter{Since: at(2), Until: at(5)}, newest(3, 2, 1)},
		{"window one machine", Filter{MachineID: "m1", Since: at(2), Until: at(6)}, newest(2)},
		{"limit", Filter{Limit: 2}, newest(5, 4)},
		{"limit one machine", Filter{MachineID: "m1", Limit: 2}, newest(5, 2)},
		{"limit above max", Filter{Limit: 5000}, newest(5, 4, 3, 2, 1, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.List(ctx, "vault-1", tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Fatalf("got %v\nwant %v", ids(got), tc.want)
			}
		})
	}

	run, err := s.Running(ctx, "vault-1", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(run), newest(5)) {
		t.Fatalf("running on m1 = %v, want %v", ids(run), newest(5))
	}

	for _, f := range []Filter{
		{Type: "Backup"}, {Status: "done"}, {Limit: -1}, {Since: at(3), Until: at(3)}, {MachineID: "M1"},
	} {
		if _, err := s.List(ctx, "vault-1", f); !errors.Is(err, ErrInvalid) {
			t.Errorf("filter %+v: got %v, want ErrInvalid", f, err)
		}
	}
}

func TestEndedJobRefusesReports(t *testing.T) {
	for _, end := range []wire.JobReport{
		{Status: wire.StatusCompleted},
		{Status: wire.StatusCompletedWithWarnings, Skipped: []wire.Skipped{{Path: "/a", Reason: "locked"}}},
		{Status: wire.StatusFailed, ErrorCode: "disk_full", Message: "no space left on the cache volume"},
		{Status: wire.StatusCancelled},
	} {
		t.Run(end.Status, func(t *testing.T) {
			s, c := newStore(t)
			j := mustCreate(t, s, "v", "m", wire.JobBackup)
			c.Advance(time.Second)
			ended := mustReport(t, s, j, end)
			if ended.Status != end.Status || ended.EndedAt == nil || !ended.EndedAt.Equal(c.Now()) {
				t.Fatalf("ended job = %+v", ended)
			}
			c.Advance(time.Second)
			for _, late := range []wire.JobReport{
				{Status: wire.StatusInProgress, Progress: wire.Progress{FilesDone: 99}},
				{Status: wire.StatusCompleted},
				end,
			} {
				got, err := s.Report(t.Context(), "v", "m", j.ID, late)
				if !errors.Is(err, ErrFinished) {
					t.Fatalf("late report %+v: got %v, want ErrFinished", late, err)
				}
				if got.Status != end.Status || !got.UpdatedAt.Equal(ended.UpdatedAt) {
					t.Fatalf("ErrFinished returned %+v, want the ended job", got)
				}
			}
			read, err := s.Get(t.Context(), "v", "m", j.ID)
			if err != nil {
				t.Fatal(err)
			}
			assertJob(t, "after late reports", read, ended)
		})
	}
}

// prog is a Progress in field order: files done, files total, bytes done,
// bytes total, bytes uploaded.
func prog(fd, ft, bd, bt, bu int64) wire.Progress {
	return wire.Progress{FilesDone: fd, FilesTotal: ft, BytesDone: bd, BytesTotal: bt, BytesUploaded: bu}
}

func TestProgressNeverMovesBackwards(t *testing.T) {
	s, _ := newStore(t)
	j := mustCreate(t, s, "v", "m", wire.JobBackup)
	steps := []struct {
		sent, want wire.Progress
	}{
		{wire.Progress{FilesDone: 5, FilesTotal: 10, BytesDone: 500, BytesTotal: 1000, BytesUploaded: 100}, prog(5, 10, 500, 1000, 100)},
		// A late report from before the first arrives second.
		{wire.Progress{FilesDone: 2, FilesTotal: 10, BytesDone: 200, BytesTotal: 1000, BytesUploaded: 50}, prog(5, 10, 500, 1000, 100)},
		// Counters are merged one by one.
		{wire.Progress{FilesDone: 4, FilesTotal: 12, BytesDone: 600, BytesTotal: 900, BytesUploaded: 90}, prog(5, 12, 600, 1000, 100)},
		{wire.Progress{}, prog(5, 12, 600, 1000, 100)},
	}
	for i, st := range steps {
		got := mustReport(t, s, j, wire.JobReport{Status: wire.StatusInProgress, Progress: st.sent})
		if got.Progress != st.want {
			t.Fatalf("step %d: progress = %+v, want %+v", i, got.Progress, st.want)
		}
	}
	got := mustReport(t, s, j, wire.JobReport{Status: wire.StatusCompleted, Progress: wire.Progress{FilesDone: 1}})
	if got.Progress != steps[len(steps)-1].want {
		t.Fatalf("final progress = %+v", got.Progress)
	}
}

// Many agents' reports (or one agent's retries) race on one job, through
// several control-plane instances (Stores on one table) as when Functions
// scales out: every counter ends at the largest value sent and every
// distinct path is kept.
func TestConcurrentReportsOnOneJobLoseNothing(t *testing.T) {
	s, c := newStore(t)
	instances := []*Store{s, New(s.c, c.Now), New(s.c, c.Now)}
	j := mustCreate(t, s, "v", "m", wire.JobBackup)
	const workers, reports = 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*reports)
	for w := range workers {
		wg.Go(func() {
			in := instances[w%len(instances)]
			for r := range reports {
				n := int64(w*reports + r)
				_, err := in.Report(t.Context(), "v", "m", j.ID, wire.JobReport{
					Status: wire.StatusInProgress,
					Progress: wire.Progress{FilesDone: n, FilesTotal: 1000 + n, BytesDone: n << 10,
						BytesTotal: 1 << 30, BytesUploaded: n << 9},
					Skipped: []wire.Skipped{
						{Path: fmt.Sprintf("/data/w%d/r%d", w, r), Reason: "locked"},
						{Path: "/data/shared", Reason: "reported by everyone"},
					},
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), "v", "m", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	top := int64(workers*reports - 1)
	if want := (wire.Progress{FilesDone: top, FilesTotal: 1000 + top, BytesDone: top << 10, BytesTotal: 1 << 30, BytesUploaded: top << 9}); got.Progress != want {
		t.Fatalf("progress = %+v, want %+v", got.Progress, want)
	}
	paths := map[string]int{}
	for _, sk := range got.Skipped {
		paths[sk.Path]++
	}
	if len(got.Skipped) != workers*reports+1 || paths["/data/shared"] != 1 {
		t.Fatalf("%d skipped entries (/data/shared %d times), want %d distinct", len(got.Skipped), paths["/data/shared"], workers*reports+1)
	}
	for w := range workers {
		for r := range reports {
			if paths[fmt.Sprintf("/data/w%d/r%d", w, r)] != 1 {
				t.Fatalf("skipped path /data/w%d/r%d lost", w, r)
			}
		}
	}
	var writes, conflicts int64
	for _, in := range instances {
		writes += in.ReportWrites()
		conflicts += in.Conflicts()
	}
	t.Logf("%d reports in %d writes, %d ETag conflicts retried", workers*reports, writes, conflicts)
}

// A refused report in a batch leaves the others' merge intact.
func TestBatchedReportsAreAnsweredOneByOne(t *testing.T) {
	s, c := newStore(t)
	j := mustCreate(t, s, "v", "m", wire.JobBackup)
	batch := []*pendingReport{
		{r: wire.JobReport{Status: wire.StatusInProgress, Progress: wire.Progress{FilesDone: 3}}},
		{r: wire.JobReport{Status: wire.StatusCompletedWithWarnings}}, // no skipped files: refused
		{r: wire.JobReport{Status: wire.StatusCompleted, Progress: wire.Progress{FilesDone: 5}}},
		{r: wire.JobReport{Status: wire.StatusInProgress, Progress: wire.Progress{FilesDone: 9}}}, // after the end
	}
	for _, p := range batch {
		p.done = make(chan struct{})
	}
	c.Advance(time.Second)
	s.commit(t.Context(), "v", "m", j.ID, batch)
	want := []struct {
		err    error
		status string
		files  int64
	}{{nil, wire.StatusInProgress, 3}, {ErrInvalid, "", 0}, {nil, wire.StatusCompleted, 5}, {ErrFinished, wire.StatusCompleted, 5}}
	for i, p := range batch {
		if !errors.Is(p.err, want[i].err) || p.job.Status != want[i].status || p.job.Progress.FilesDone != want[i].files {
			t.Errorf("report %d: %v, %s, %d files; want %v, %s, %d", i, p.err, p.job.Status, p.job.Progress.FilesDone, want[i].err, want[i].status, want[i].files)
		}
	}
	got, err := s.Get(t.Context(), "v", "m", j.ID)
	if err != nil || got.Status != wire.StatusCompleted || got.Progress.FilesDone != 5 || s.ReportWrites() != 1 {
		t.Fatalf("stored %+v, %v after %d writes", got, err, s.ReportWrites())
	}
}

func TestFailStale(t *testing.T) {
	s, c := newStore(t)
	ctx := t.Context()
	quiet := mustCreate(t, s, "v1", "m1", wire.JobBackup)  // never reports again
	other := mustCreate(t, s, "v2", "m9", wire.JobRestore) // another vault: FailStale covers all
	busy := mustCreate(t, s, "v1", "m2", wire.JobBackup)   // reports on
	done := mustCreate(t, s, "v1", "m3", wire.JobBackup)   // ended before
	mustReport(t, s, done, wire.JobReport{Status: wire.StatusCompleted})

	c.Advance(5 * time.Hour)
	mustReport(t, s, busy, wire.JobReport{Status: wire.StatusInProgress, Progress: wire.Progress{FilesDone: 1}})
	c.Advance(2 * time.Hour)
	cutoff := c.Now().Add(-6 * time.Hour) // busy reported 2 h ago, the others 7 h ago

	failed, err := s.FailStale(ctx, cutoff, "agent_silent", "no report for 6 hours; check that the agent is running")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(failed, func(a, b wire.Job) int { return strings.Compare(a.VaultID, b.VaultID) })
	if !slices.Equal(ids(failed), []string{quiet.ID, other.ID}) {
		t.Fatalf("failed %v, want %v", ids(failed), []string{quiet.ID, other.ID})
	}
	for _, j := range failed {
		if j.Status != wire.StatusFailed || j.ErrorCode != "agent_silent" || j.EndedAt == nil || !j.EndedAt.Equal(c.Now()) {
			t.Fatalf("failed job = %+v", j)
		}
	}
	read, err := s.Get(ctx, "v1", "m1", quiet.ID)
	if err != nil || read.Status != wire.StatusFailed || read.Message == "" {
		t.Fatalf("stored stale job = %+v, %v", read, err)
	}
	// A late progress report does not reopen it (the outcome may still
	// come, and replaces the failure: TestLateOutcomeReplacesStaleFailure).
	if _, err := s.Report(ctx, "v1", "m1", quiet.ID, wire.JobReport{Status: wire.StatusInProgress}); !errors.Is(err, ErrFinished) {
		t.Fatalf("progress after FailStale: %v, want ErrFinished", err)
	}
	for _, j := range []wire.Job{busy, done} {
		read, err := s.Get(ctx, j.VaultID, j.MachineID, j.ID)
		if err != nil || read.Status == wire.StatusFailed {
			t.Fatalf("job %s = %+v, %v; it must be left alone", j.ID, read, err)
		}
	}

	again, err := s.FailStale(ctx, cutoff, "agent_silent", "")
	if err != nil || len(again) != 0 {
		t.Fatalf("second run failed %v, %v; want none", ids(again), err)
	}
	if _, err := s.FailStale(ctx, cutoff, "", "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("FailStale without a code: %v, want ErrInvalid", err)
	}
}

func TestBadIDsAreRefused(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	good := mustCreate(t, s, "v", "m", wire.JobBackup)
	for _, bad := range []string{
		"", "V", "a b", "a'b", "a' or PartitionKey ne '", "a~b", "a/b", "a#b", "a?b", `a\b`, "a_b", "ä",
		"a\x00", strings.Repeat("a", 129),
	} {
		for name, call := range map[string]func() error{
			"create vault":   func() error { _, err := s.Create(ctx, bad, "m", "", wire.JobBackup); return err },
			"create machine": func() error { _, err := s.Create(ctx, "v", bad, "", wire.JobBackup); return err },
			"get vault":      func() error { _, err := s.Get(ctx, bad, "m", good.ID); return err },
			"get job":        func() error { _, err := s.Get(ctx, "v", "m", bad); return err },
			"report machine": func() error {
				_, err := s.Report(ctx, "v", bad, good.ID, wire.JobReport{Status: wire.StatusInProgress})
				return err
			},
			"report job": func() error {
				_, err := s.Report(ctx, "v", "m", bad, wire.JobReport{Status: wire.StatusInProgress})
				return err
			},
			"list vault":   func() error { _, err := s.List(ctx, bad, Filter{}); return err },
			"list machine": func() error { _, err := s.List(ctx, "v", Filter{MachineID: bad}); return err },
			"running":      func() error { _, err := s.Running(ctx, "v", bad); return err },
		} {
			if bad == "" && name == "list machine" {
				continue // an empty machine filter means every machine
			}
			if err := call(); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s %q: got %v, want ErrInvalid", name, bad, err)
			}
		}
	}
	// Well-formed but unknown: not found, not invalid.
	if _, err := s.Get(ctx, "v", "m", "7fffffffffffffff-00000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown job: %v, want ErrNotFound", err)
	}
	if _, err := s.Report(ctx, "v", "other", good.ID, wire.JobReport{Status: wire.StatusInProgress}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("job of another machine: %v, want ErrNotFound", err)
	}
	if _, err := s.Create(ctx, "v", "m", "", "Backup"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown type: %v, want ErrInvalid", err)
	}
	if _, err := s.Create(ctx, "v", "m", strings.Repeat("n", 257), wire.JobBackup); !errors.Is(err, ErrInvalid) {
		t.Fatalf("long machine name: %v, want ErrInvalid", err)
	}
}

func TestReportsAreValidated(t *testing.T) {
	s, _ := newStore(t)
	j := mustCreate(t, s, "v", "m", wire.JobBackup)
	for name, r := range map[string]wire.JobReport{
		"unknown status":                 {Status: "done"},
		"empty status":                   {},
		"failed without code":            {Status: wire.StatusFailed, Message: "boom"},
		"code on completed":              {Status: wire.StatusCompleted, ErrorCode: "x"},
		"negative counter":               {Status: wire.StatusInProgress, Progress: wire.Progress{BytesDone: -1}},
		"skipped without path":           {Status: wire.StatusInProgress, Skipped: []wire.Skipped{{Reason: "locked"}}},
		"warnings without skipped files": {Status: wire.StatusCompletedWithWarnings},
		"control character in code":      {Status: wire.StatusFailed, ErrorCode: "a\nb"},
	} {
		if _, err := s.Report(t.Context(), "v", "m", j.ID, r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	got, err := s.Get(t.Context(), "v", "m", j.ID)
	if err != nil || got.Status != wire.StatusInProgress || !got.UpdatedAt.Equal(j.UpdatedAt) {
		t.Fatalf("refused reports changed the job: %+v, %v", got, err)
	}
}

// Files skipped during the job make a plain "completed" show warnings.
func TestCompletedAfterSkipsShowsWarnings(t *testing.T) {
	s, _ := newStore(t)
	j := mustCreate(t, s, "v", "m", wire.JobBackup)
	mustReport(t, s, j, wire.JobReport{Status: wire.StatusInProgress, Skipped: []wire.Skipped{{Path: "/x", Reason: "locked"}}})
	if got := mustReport(t, s, j, wire.JobReport{Status: wire.StatusCompleted}); got.Status != wire.StatusCompletedWithWarnings {
		t.Fatalf("status = %s, want completed_with_warnings", got.Status)
	}
}

// The skipped list is capped; what is beyond is counted, and a list near
// the byte budget (long non-ASCII paths) still round-trips through storage.
func TestSkippedListIsBounded(t *testing.T) {
	s, _ := newStore(t)
	j := mustCreate(t, s, "v", "m", wire.JobBackup)
	// ASCII: Azurite garbles a multi-byte character that straddles two
	// chunks of a large request body (Azure/Azurite#2670); Azure does not.
	// TestEncodedJobFitsTableLimits covers non-ASCII at the budget.
	long := strings.Repeat("dir/", 100) // 400 characters
	var batch []wire.Skipped
	for i := range MaxSkipped + 200 {
		batch = append(batch, wire.Skipped{Path: fmt.Sprintf("%s%05d", long, i), Reason: "locked"})
		if len(batch) == 300 {
			mustReport(t, s, j, wire.JobReport{Status: wire.StatusInProgress, Skipped: batch})
			batch = nil
		}
	}
	got := mustReport(t, s, j, wire.JobReport{Status: wire.StatusCompleted, Skipped: batch})
	listed := got.Skipped[:len(got.Skipped)-1]
	summary := got.Skipped[len(got.Skipped)-1]
	if summary.Path != "" || !strings.Contains(summary.Reason, "more skipped files") {
		t.Fatalf("last entry = %+v, want the summary", summary)
	}
	more := MaxSkipped + 200 - len(listed)
	if !strings.HasPrefix(summary.Reason, fmt.Sprint(more)+" ") {
		t.Fatalf("summary %q, want %d more", summary.Reason, more)
	}
	// 400-rune paths: the byte budget, not the count, is what stops the list.
	if len(listed) >= MaxSkipped || len(listed) < 700 {
		t.Fatalf("%d entries listed", len(listed))
	}
	for i, e := range listed {
		if e.Path != fmt.Sprintf("%s%05d", long, i) {
			want := fmt.Sprintf("%s%05d", long, i)
			k := 0
			for k < len(want) && k < len(e.Path) && want[k] == e.Path[k] {
				k++
			}
			t.Fatalf("entry %d differs at byte %d of %d/%d: %q", i, k, len(e.Path), len(want), e.Path[max(0, k-10):min(len(e.Path), k+20)])
		}
	}
	if got.Status != wire.StatusCompletedWithWarnings {
		t.Fatalf("status = %s", got.Status)
	}
	read, err := s.Get(t.Context(), "v", "m", j.ID)
	if err != nil || len(read.Skipped) != len(got.Skipped) {
		t.Fatalf("get: %d entries, %v", len(read.Skipped), err)
	}
}

func TestMissingTableSaysWhatToDo(t *testing.T) {
	svc, err := aztables.NewServiceClientFromConnectionString(emulator(t).ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := New(svc.NewClient("nosuchtable"), nil)
	_, err = s.Create(t.Context(), "v", "m", "", wire.JobBackup)
	if err == nil || !strings.Contains(err.Error(), "EnsureTable") {
		t.Fatalf("create without a table: %v", err)
	}
}

// newClock is the test's clock, which it moves by hand.
func newClock() *clocktest.Fake { return clocktest.New(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)) }

// TestLateOutcomeReplacesStaleFailure: an agent that was cut off reports
// its outcome once it is back; the job then shows that outcome instead of
// the agent_silent failure, the caller hears of it to set the alert right,
// and the job takes nothing more after that, as any ended job.
func TestLateOutcomeReplacesStaleFailure(t *testing.T) {
	s, c := newStore(t)
	ctx := t.Context()
	type late struct{ failed, now wire.Job }
	heard := make(chan late, 4)
	s.OnLateOutcome = func(_ context.Context, failed, now wire.Job) { heard <- late{failed, now} }

	ok := mustCreate(t, s, "v1", "m1", wire.JobBackup)
	bad := mustCreate(t, s, "v1", "m2", wire.JobBackup)
	byAgent := mustCreate(t, s, "v1", "m3", wire.JobBackup)
	mustReport(t, s, byAgent, wire.JobReport{Status: wire.StatusFailed, ErrorCode: "disk_gone"})
	mustReport(t, s, ok, wire.JobReport{Status: wire.StatusInProgress, Progress: wire.Progress{FilesDone: 3, FilesTotal: 10}})
	c.Advance(7 * time.Hour)
	failed, err := s.FailStale(ctx, c.Now().Add(-6*time.Hour), "agent_silent", "no report for 6 hours")
	if err != nil || len(failed) != 2 {
		t.Fatalf("FailStale = %v, %v; want the two silent jobs", ids(failed), err)
	}

	c.Advance(time.Hour)
	got, err := s.Report(ctx, "v1", "m1", ok.ID, wire.JobReport{Status: wire.StatusCompleted, PointID: "p-1",
		Progress: wire.Progress{FilesDone: 10, FilesTotal: 10}})
	if err != nil {
		t.Fatalf("late outcome: %v", err)
	}
	if got.Status != wire.StatusCompleted || got.ErrorCode != "" || got.Message != "" || got.PointID != "p-1" ||
		got.Progress.FilesDone != 10 || got.EndedAt == nil || !got.EndedAt.Equal(c.Now()) {
		t.Fatalf("job after its late outcome = %+v", got)
	}
	if read, err := s.Get(ctx, "v1", "m1", ok.ID); err != nil || read.Status != wire.StatusCompleted || read.ErrorCode != "" {
		t.Fatalf("stored job = %+v, %v", read, err)
	}
	h := <-heard
	if h.failed.ErrorCode != "agent_silent" || h.failed.ID != ok.ID || h.now.Status != wire.StatusCompleted {
		t.Fatalf("OnLateOutcome got %+v", h)
	}

	// A late failure replaces it too, with the agent's own reason.
	got, err = s.Report(ctx, "v1", "m2", bad.ID, wire.JobReport{Status: wire.StatusFailed, ErrorCode: "vss_failed", Message: "snapshot refused"})
	if err != nil || got.Status != wire.StatusFailed || got.ErrorCode != "vss_failed" || got.Message != "snapshot refused" {
		t.Fatalf("late failure = %+v, %v", got, err)
	}
	if h := <-heard; h.now.ErrorCode != "vss_failed" {
		t.Fatalf("OnLateOutcome got %+v", h)
	}

	// Once replaced, the job is ended like any other; and a failure the
	// agent reported itself was never the server's guess.
	for _, j := range []wire.Job{ok, byAgent} {
		if _, err := s.Report(ctx, j.VaultID, j.MachineID, j.ID, wire.JobReport{Status: wire.StatusCompleted}); !errors.Is(err, ErrFinished) {
			t.Fatalf("report on ended job %s: %v, want ErrFinished", j.ID, err)
		}
	}
	select {
	case h := <-heard:
		t.Fatalf("OnLateOutcome called again: %+v", h)
	default:
	}
}
