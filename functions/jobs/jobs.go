// Package jobs tracks backup, restore and other jobs in one Table storage
// table. Agents create jobs and report progress and outcome; admins list
// them by machine, type, status and time.
//
// Layout (see entity.go): PartitionKey vaultID~machineID, so one machine's
// jobs are one partition; RowKey is the job ID, which begins with the
// inverted start time, so rows sort newest first. A vault's jobs are a
// PartitionKey range. Type and Status are string columns, StartedAt,
// UpdatedAt and EndedAt Edm.DateTime, counters Edm.Int64. Skipped files are
// JSON split over properties Skipped00.., bounded (MaxSkipped entries and
// about 700 KB) because an entity holds at most 1 MiB and a string 64 KiB;
// files beyond the bound are only counted (SkippedMore).
//
// Reports are merged, not overwritten: counters keep their maximum, skipped
// files are added once per path, and an ended job takes no more reports.
// Concurrent reports on a job read, merge and write under the row's ETag
// and retry on a conflict, so none is lost.
package jobs

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// TableName is the table the control plane keeps jobs in.
const TableName = "jobs"

// Errors callers map to API answers.
var (
	ErrNotFound = errors.New("job not found")                // wire.CodeNotFound
	ErrFinished = errors.New("job has ended")                // wire.CodeJobFinished
	ErrInvalid  = errors.New("invalid job request")          // wire.CodeValidation
	ErrBusy     = errors.New("job is updated too often now") // wire.CodeUnavailable: retry later
)

// List limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Optimistic concurrency: a report that keeps losing the ETag race backs
// off with full jitter up to maxBackoff, and gives up (ErrBusy) after
// maxAttempts. Hundreds of agents on one job still get through well within
// that bound (see emulator-tests/jobsload).
const (
	maxAttempts = 100
	baseBackoff = 2 * time.Millisecond
	maxBackoff  = 100 * time.Millisecond
)

// Store keeps jobs in one table. It is safe for concurrent use.
type Store struct {
	c         *aztables.Client
	now       func() time.Time
	log       *slog.Logger
	conflicts atomic.Int64
	batches   atomic.Int64

	mu     sync.Mutex
	queues map[string]*jobQueue // by PartitionKey/RowKey

	// OnLateOutcome, if set, is called after an agent's outcome replaced a
	// failure FailStale had recorded, with the job as FailStale left it and
	// as it is now, so the caller can set the earlier alert right. Set it
	// before the Store is used; it runs after the write, outside any
	// request's context.
	OnLateOutcome func(ctx context.Context, failed, now wire.Job)
}

// New returns a Store on client's table (TableName, say); call EnsureTable
// once at start-up. now is the server clock; nil means time.Now.
func New(client *aztables.Client, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{c: client, now: now, log: slog.Default(), queues: map[string]*jobQueue{}}
}

// SetLogger sends the store's logs to l.
func (s *Store) SetLogger(l *slog.Logger) { s.log = l.With("component", "jobs") }

// EnsureTable creates the table if it does not exist.
func (s *Store) EnsureTable(ctx context.Context) error {
	if _, err := s.c.CreateTable(ctx, nil); err != nil && !tables.Status(err, http.StatusConflict) {
		return fmt.Errorf("create the jobs table (check the storage account and the app's Table Data Contributor role): %w", err)
	}
	return nil
}

// Conflicts is how many writes lost an ETag race and were retried since
// the Store was made.
func (s *Store) Conflicts() int64 { return s.conflicts.Load() }

// ReportWrites is how many batches of reports the Store has committed (or
// tried to); against the number of reports it shows how well concurrent
// reports coalesced.
func (s *Store) ReportWrites() int64 { return s.batches.Load() }

// Create starts a job of jobType on a machine, in progress from now.
func (s *Store) Create(ctx context.Context, vaultID, machineID, machineName, jobType string) (wire.Job, error) {
	if err := checkKeys(vaultID, machineID); err != nil {
		return wire.Job{}, err
	}
	if !jobTypes[jobType] {
		return wire.Job{}, fmt.Errorf("%w: job type %q is unknown; use one of backup, restore, register, configure_backup, disable_backup, delete_backup_data", ErrInvalid, jobType)
	}
	if n := len([]rune(machineName)); n > MaxMachineNameRunes || !printable(machineName) {
		return wire.Job{}, fmt.Errorf("%w: machine name must be at most %d printable characters, got %d", ErrInvalid, MaxMachineNameRunes, n)
	}
	// A clash needs the same machine, microsecond and 32 random bits; a new
	// suffix settles it.
	for range 3 {
		now := serverTime(s.now())
		rec := &record{job: wire.Job{
			ID:          invertedHex(now) + "-" + randomHex(randHexes/2),
			VaultID:     vaultID,
			MachineID:   machineID,
			MachineName: machineName,
			Type:        jobType,
			Status:      wire.StatusInProgress,
			StartedAt:   now,
			UpdatedAt:   now,
		}}
		b, err := encode(rec)
		if err != nil {
			return wire.Job{}, err
		}
		_, err = s.c.AddEntity(ctx, b, nil)
		if err == nil {
			return rec.view(), nil
		}
		if !tables.Status(err, http.StatusConflict) {
			return wire.Job{}, s.wrap(err, "create %s job on machine %s of vault %s", jobType, machineID, vaultID)
		}
	}
	return wire.Job{}, fmt.Errorf("create %s job on machine %s: job IDs kept clashing; retry", jobType, machineID)
}

// Get reads one job.
func (s *Store) Get(ctx context.Context, vaultID, machineID, jobID string) (wire.Job, error) {
	if err := checkAll(vaultID, machineID, jobID); err != nil {
		return wire.Job{}, err
	}
	rec, _, err := s.load(ctx, vaultID, machineID, jobID)
	if err != nil {
		return wire.Job{}, err
	}
	return rec.view(), nil
}

// Report merges an agent's report into its job and returns the job as
// stored. On ErrFinished it also returns the job as it ended, so a client
// that retried its final report can see that the first one landed.
//
// Reports on one job that arrive together in this process are merged into
// one write (each still gets its own answer), so a burst costs a few round
// trips instead of a storm of ETag conflicts. Other instances of the
// control plane are kept in step by the ETag. If ctx ends first, Report
// returns ctx's error, and the report may still be applied.
func (s *Store) Report(ctx context.Context, vaultID, machineID, jobID string, r wire.JobReport) (wire.Job, error) {
	if err := checkAll(vaultID, machineID, jobID); err != nil {
		return wire.Job{}, err
	}
	r, err := checkReport(r)
	if err != nil {
		return wire.Job{}, err
	}
	req := &pendingReport{r: r, done: make(chan struct{})}
	key := partitionKey(vaultID, machineID) + "/" + jobID
	s.mu.Lock()
	q := s.queues[key]
	if q == nil {
		q = &jobQueue{}
		s.queues[key] = q
	}
	q.pending = append(q.pending, req)
	start := !q.draining
	q.draining = true
	s.mu.Unlock()
	if start {
		// Not tied to this caller: its report is committed with others',
		// whose callers are still waiting.
		go s.drain(context.WithoutCancel(ctx), vaultID, machineID, jobID, key, q)
	}
	select {
	case <-req.done:
		return req.job, req.err
	case <-ctx.Done():
		return wire.Job{}, fmt.Errorf("report on job %s: %w; it may still be applied", jobID, ctx.Err())
	}
}

type pendingReport struct {
	r    wire.JobReport
	job  wire.Job
	err  error
	done chan struct{}
	// replaced is the FailStale failure this report's outcome replaced.
	replaced *wire.Job
}

// jobQueue holds the reports on one job waiting for the next write.
type jobQueue struct {
	pending  []*pendingReport
	draining bool
}

// drain writes q's reports in batches until none are left.
func (s *Store) drain(ctx context.Context, vaultID, machineID, jobID, key string, q *jobQueue) {
	for {
		s.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.draining = false
			delete(s.queues, key)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.commit(ctx, vaultID, machineID, jobID, batch)
	}
}

// commitTimeout bounds one batch's read-merge-write cycles.
const commitTimeout = 2 * time.Minute

// commit applies a batch of reports in arrival order, in one write, and
// answers each. A report that is refused (ErrInvalid, ErrFinished) leaves
// the job as it was for the reports after it.
func (s *Store) commit(ctx context.Context, vaultID, machineID, jobID string, batch []*pendingReport) {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	s.batches.Add(1)
	err := s.update(ctx, vaultID, machineID, jobID, nil, func(rec *record) (bool, error) {
		now := serverTime(s.now())
		write := false
		for _, p := range batch {
			next := rec.clone()
			p.replaced = nil // a retry after an ETag conflict starts over
			if err := apply(next, p.r, now); err != nil {
				p.job, p.err = wire.Job{}, err
				if errors.Is(err, ErrFinished) {
					p.job = rec.view()
				}
				continue
			}
			if rec.failedStale && !next.failedStale {
				failed := rec.view()
				p.replaced = &failed
			}
			*rec = *next
			p.job, p.err, write = rec.view(), nil, true
		}
		return write, nil
	})
	for _, p := range batch {
		if err != nil {
			p.job, p.err = wire.Job{}, err
		}
		close(p.done)
		// After the answer: the agent need not wait on alert bookkeeping.
		if err == nil && p.err == nil && p.replaced != nil {
			s.log.InfoContext(ctx, "a late outcome replaced the failure recorded when the agent went silent",
				"vault", vaultID, "machine", machineID, "job", jobID, "was", p.replaced.ErrorCode, "now", p.job.Status)
			if s.OnLateOutcome != nil {
				s.OnLateOutcome(ctx, *p.replaced, p.job)
			}
		}
	}
}

// update runs a read-merge-write cycle under the row's ETag until it wins.
// change edits the record and says whether to write it. first, if set, is
// the row as already read (with its ETag), which saves the first read.
func (s *Store) update(ctx context.Context, vaultID, machineID, jobID string, first *loaded, change func(*record) (bool, error)) error {
	for attempt := 1; ; attempt++ {
		cur := first
		first = nil
		if cur == nil {
			rec, etag, err := s.load(ctx, vaultID, machineID, jobID)
			if err != nil {
				return err
			}
			cur = &loaded{rec, etag}
		}
		write, err := change(cur.rec)
		if err != nil || !write {
			return err
		}
		b, err := encode(cur.rec)
		if err != nil {
			return err
		}
		etag := cur.etag
		_, err = s.c.UpdateEntity(ctx, b, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
		switch {
		case err == nil:
			return nil
		case tables.Status(err, http.StatusNotFound):
			return s.wrap(err, "update job %s", jobID)
		case !tables.Status(err, http.StatusPreconditionFailed):
			return s.wrap(err, "update job %s of machine %s", jobID, machineID)
		}
		s.conflicts.Add(1)
		if attempt >= maxAttempts {
			s.log.WarnContext(ctx, "job update gave up after ETag conflicts", "job", jobID, "machine", machineID, "attempts", attempt)
			return fmt.Errorf("%w: job %s lost %d updates in a row to concurrent ones; retry the report in a few seconds", ErrBusy, jobID, attempt)
		}
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("update job %s: %w", jobID, err)
		}
	}
}

type loaded struct {
	rec  *record
	etag azcore.ETag
}

// backoff waits a random time up to an exponentially growing ceiling, so
// writers that collided spread out instead of colliding again.
func backoff(ctx context.Context, attempt int) error {
	ceiling := min(maxBackoff, baseBackoff<<min(attempt-1, 16))
	t := time.NewTimer(mrand.N(ceiling) + time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) load(ctx context.Context, vaultID, machineID, jobID string) (*record, azcore.ETag, error) {
	resp, err := s.c.GetEntity(ctx, partitionKey(vaultID, machineID), jobID, nil)
	if err != nil {
		return nil, "", s.wrap(err, "read job %s of machine %s in vault %s", jobID, machineID, vaultID)
	}
	rec, _, err := decode(resp.Value)
	if err != nil {
		return nil, "", err
	}
	return rec, resp.ETag, nil
}

// Filter selects jobs of a vault. Empty fields match everything. Since is
// inclusive and Until exclusive, both on StartedAt.
type Filter struct {
	MachineID, Type, Status string
	Since, Until            time.Time
	Limit                   int // 0 means DefaultLimit; more than MaxLimit means MaxLimit
}

// List returns a vault's jobs that match f, newest first. One machine's
// list reads at most Limit rows; a vault-wide one reads every match (rows
// are ordered by machine first), keeping only the newest Limit, so bound
// it with Since when a vault has a long history.
func (s *Store) List(ctx context.Context, vaultID string, f Filter) ([]wire.Job, error) {
	if err := checkID("vault", vaultID); err != nil {
		return nil, err
	}
	var conds []string
	if f.MachineID != "" {
		if err := checkID("machine", f.MachineID); err != nil {
			return nil, err
		}
		conds = append(conds, "PartitionKey eq "+quote(partitionKey(vaultID, f.MachineID)))
	} else {
		conds = append(conds, "PartitionKey ge "+quote(vaultID+sep), "PartitionKey lt "+quote(vaultID+sep+sep))
	}
	if f.Type != "" {
		if !jobTypes[f.Type] {
			return nil, fmt.Errorf("%w: type filter %q is not a job type", ErrInvalid, f.Type)
		}
		conds = append(conds, "Type eq "+quote(f.Type))
	}
	if f.Status != "" {
		if !statuses[f.Status] {
			return nil, fmt.Errorf("%w: status filter %q is not a job status", ErrInvalid, f.Status)
		}
		conds = append(conds, "Status eq "+quote(f.Status))
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return nil, fmt.Errorf("%w: since (%s) must be before until (%s)", ErrInvalid, f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	// RowKeys are inverted times, and a job ID's random part sorts below
	// "~": StartedAt >= Since is RowKey < inv(Since)+"~", StartedAt < Until
	// is RowKey > inv(Until)+"~".
	if !f.Since.IsZero() {
		conds = append(conds, "RowKey lt "+quote(invertedHex(f.Since)+sep))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "RowKey gt "+quote(invertedHex(f.Until)+sep))
	}
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, fmt.Errorf("%w: limit must not be negative", ErrInvalid)
	case limit == 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	newest := &newestHeap{limit: limit}
	err := s.query(ctx, strings.Join(conds, " and "), limit, func(rec *record, _ azcore.ETag) (bool, error) {
		newest.offer(rec)
		// Within one partition rows come newest first: the first Limit are
		// the answer.
		return f.MachineID == "" || newest.Len() < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs of vault %s: %w", vaultID, err)
	}
	return newest.sorted(), nil
}

// Running returns one machine's jobs in progress, newest first.
func (s *Store) Running(ctx context.Context, vaultID, machineID string) ([]wire.Job, error) {
	if err := checkKeys(vaultID, machineID); err != nil {
		return nil, err
	}
	return s.List(ctx, vaultID, Filter{MachineID: machineID, Status: wire.StatusInProgress, Limit: MaxLimit})
}

// FailStale fails every job, in every vault, that is in progress and has
// not been reported on since before cutoff, with code and message, and
// returns those jobs so the caller can raise alerts. A report that lands
// meanwhile wins: its job is left alone. An outcome the agent reports
// later replaces the failure (see apply and OnLateOutcome). On an error it returns the jobs
// failed so far with it. It scans the table (a timer job, not a request).
func (s *Store) FailStale(ctx context.Context, cutoff time.Time, code, message string) ([]wire.Job, error) {
	if code == "" || len(code) > maxCodeLen || !printable(code) {
		return nil, fmt.Errorf("%w: a stale job needs an error code of 1 to %d printable characters", ErrInvalid, maxCodeLen)
	}
	if cutoff.IsZero() {
		return nil, fmt.Errorf("%w: FailStale needs a cutoff time, such as now minus the longest silence a job may keep", ErrInvalid)
	}
	message = truncate(message, MaxMessageRunes)
	var failed []wire.Job
	filter := "Status eq " + quote(wire.StatusInProgress) + " and UpdatedAt lt " + dateTime(cutoff)
	err := s.query(ctx, filter, 0, func(rec *record, etag azcore.ETag) (bool, error) {
		j := rec.job
		var out wire.Job
		changed := false
		err := s.update(ctx, j.VaultID, j.MachineID, j.ID, &loaded{rec, etag}, func(r *record) (bool, error) {
			if r.job.Status != wire.StatusInProgress || !r.job.UpdatedAt.Before(cutoff) {
				changed = false
				return false, nil
			}
			now := serverTime(s.now())
			r.job.Status, r.job.ErrorCode, r.job.Message = wire.StatusFailed, code, message
			r.job.UpdatedAt, r.job.EndedAt = now, &now
			r.failedStale = true
			out, changed = r.view(), true
			return true, nil
		})
		switch {
		case errors.Is(err, ErrNotFound):
			return true, nil // deleted meanwhile
		case err != nil:
			return false, err
		}
		if changed {
			s.log.InfoContext(ctx, "failed a stale job", "vault", j.VaultID, "machine", j.MachineID, "job", j.ID,
				"type", j.Type, "lastReport", j.UpdatedAt, "code", code)
			failed = append(failed, out)
		}
		return true, nil
	})
	if err != nil {
		return failed, fmt.Errorf("fail stale jobs: %w", err)
	}
	return failed, nil
}

// query calls fn for each row matching filter until fn says stop. top,
// when positive, sizes the pages.
func (s *Store) query(ctx context.Context, filter string, top int, fn func(*record, azcore.ETag) (bool, error)) error {
	opts := &aztables.ListEntitiesOptions{Filter: &filter}
	if top > 0 {
		t := int32(top)
		opts.Top = &t
	}
	pager := s.c.NewListEntitiesPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return s.wrap(err, "query jobs")
		}
		for _, b := range page.Entities {
			rec, etag, err := decode(b)
			if err != nil {
				return err
			}
			more, err := fn(rec, azcore.ETag(etag))
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// newestHeap keeps the newest limit records: a heap whose root is the
// oldest kept.
type newestHeap struct {
	limit int
	recs  []*record
}

// newer orders by RowKey (inverted start time), then by partition.
func newer(a, b *record) int {
	return cmp.Or(strings.Compare(a.job.ID, b.job.ID),
		strings.Compare(partitionKey(a.job.VaultID, a.job.MachineID), partitionKey(b.job.VaultID, b.job.MachineID)))
}

func (h *newestHeap) Len() int           { return len(h.recs) }
func (h *newestHeap) Less(i, j int) bool { return newer(h.recs[i], h.recs[j]) > 0 }
func (h *newestHeap) Swap(i, j int)      { h.recs[i], h.recs[j] = h.recs[j], h.recs[i] }
func (h *newestHeap) Push(x any)         { h.recs = append(h.recs, x.(*record)) }
func (h *newestHeap) Pop() any {
	x := h.recs[len(h.recs)-1]
	h.recs = h.recs[:len(h.recs)-1]
	return x
}

func (h *newestHeap) offer(r *record) {
	if len(h.recs) < h.limit {
		heap.Push(h, r)
		return
	}
	if newer(r, h.recs[0]) < 0 {
		h.recs[0] = r
		heap.Fix(h, 0)
	}
}

func (h *newestHeap) sorted() []wire.Job {
	out := make([]wire.Job, len(h.recs))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(h).(*record).view()
	}
	return out
}

func checkKeys(vaultID, machineID string) error {
	return errors.Join(checkID("vault", vaultID), checkID("machine", machineID))
}

func checkAll(vaultID, machineID, jobID string) error {
	return errors.Join(checkID("vault", vaultID), checkID("machine", machineID), checkJobID(jobID))
}

// wrap names what failed and maps storage answers to this package's errors.
func (s *Store) wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.ErrorCode == string(aztables.TableNotFound):
			return fmt.Errorf("%s: the jobs table does not exist; call EnsureTable at start-up: %w", what, err)
		case re.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %s: check the vault, machine and job IDs", ErrNotFound, what)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}
