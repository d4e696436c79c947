package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Reports that cannot reach the control plane wait in the config folder's
// pending/ and are sent when it answers again, so an outage loses no
// recovery point and no job outcome.
const pendingDir = "pending"

// pending is one report waiting to be sent.
type pending struct {
	Kind   string          `json:"kind"` // "point" or "outcome"
	JobID  string          `json:"jobId"`
	Point  *wire.NewPoint  `json:"point,omitempty"`
	Report *wire.JobReport `json:"report,omitempty"`
	Queued time.Time       `json:"queued"`
}

// Job is a job the control plane tracks.
type Job struct {
	s        *Session
	ID       string
	lastSent time.Time
}

// StartJob creates a job of type typ.
func (s *Session) StartJob(ctx context.Context, typ string) (*Job, error) {
	j, err := s.Client.StartJob(ctx, typ)
	if err != nil {
		return nil, fmt.Errorf("start a %s job with the control plane: %w", typ, err)
	}
	return &Job{s: s, ID: j.ID}, nil
}

// ProgressEvery is how often progress is reported: often enough that the
// control plane's stale-job bound (2 hours) is never near.
const ProgressEvery = 30 * time.Second

// Progress reports counters: the first report at once, then at most every
// ProgressEvery. A failure is logged, not returned, since the next report
// carries the same counters.
func (j *Job) Progress(ctx context.Context, p wire.Progress) {
	if !j.lastSent.IsZero() && j.s.Now().Sub(j.lastSent) < ProgressEvery {
		return
	}
	j.lastSent = j.s.Now()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := j.s.Client.ReportJob(ctx, j.ID, wire.JobReport{Status: wire.StatusInProgress, Progress: p}); err != nil {
		slog.Warn("progress not reported; the next report will carry it", "job", j.ID, "err", err)
	}
}

// Finish reports the outcome, or keeps it for later if the control plane
// cannot be reached.
func (j *Job) Finish(ctx context.Context, r wire.JobReport) error {
	return j.s.send(ctx, pending{Kind: "outcome", JobID: j.ID, Report: &r, Queued: j.s.Now()})
}

// AddPoint registers a completed point, or keeps it for later.
func (j *Job) AddPoint(ctx context.Context, pointID string, retainUntil *time.Time) error {
	return j.s.send(ctx, pending{Kind: "point", JobID: j.ID, Point: &wire.NewPoint{ID: pointID, JobID: j.ID, RetainUntil: retainUntil}, Queued: j.s.Now()})
}

// ErrQueued: the report waits in pending/ until the control plane answers.
var ErrQueued = errors.New("the control plane could not be reached; the report is kept and will be sent later")

func (s *Session) send(ctx context.Context, p pending) error {
	err := s.deliver(ctx, p)
	if err == nil || !retryable(err) {
		return err
	}
	if qerr := s.queue(p); qerr != nil {
		return fmt.Errorf("%w; and keeping it failed: %v", err, qerr)
	}
	slog.Warn("report kept for later", "kind", p.Kind, "job", p.JobID, "err", err)
	return ErrQueued
}

func (s *Session) deliver(ctx context.Context, p pending) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var err error
	switch p.Kind {
	case "point":
		err = s.Client.AddPoint(ctx, *p.Point)
	case "outcome":
		err = s.Client.ReportJob(ctx, p.JobID, *p.Report)
		if cpclient.Code(err) == wire.CodeJobFinished {
			err = nil // already recorded, by an earlier attempt or the monitor
		}
	default:
		err = fmt.Errorf("unknown pending report %q", p.Kind)
	}
	return err
}

// retryable: no answer, or the server's fault; a 4xx will not get better.
func retryable(err error) bool {
	var se *cpclient.StatusError
	if errors.As(err, &se) {
		return se.Status >= 500 || se.Status == 429
	}
	return !errors.Is(err, context.Canceled)
}

func (s *Session) queue(p pending) error {
	dir := filepath.Join(s.Dir, pendingDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	// Points sort before outcomes of the same job, so a job is never
	// reported done before its point is known.
	order := "1"
	if p.Kind == "outcome" {
		order = "2"
	}
	return writeFile(filepath.Join(dir, fmt.Sprintf("%d-%s-%s.json", p.Queued.UnixNano(), order, p.JobID)), b)
}

// FlushPending sends the reports kept during an outage, oldest first, and
// returns how many are still waiting.
func (s *Session) FlushPending(ctx context.Context) (int, error) {
	dir := filepath.Join(s.Dir, pendingDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	left := 0
	for i, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		name := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(name)
		if err != nil {
			return len(entries) - i, err
		}
		var p pending
		if err := json.Unmarshal(b, &p); err != nil {
			slog.Error("dropping a damaged pending report", "file", name, "err", err)
			os.Remove(name)
			continue
		}
		if err := s.deliver(ctx, p); err != nil {
			if retryable(err) {
				return len(entries) - i, err
			}
			slog.Error("the control plane refused a pending report; dropping it", "kind", p.Kind, "job", p.JobID, "err", err)
		}
		os.Remove(name)
	}
	return left, nil
}
