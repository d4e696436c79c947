package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/cache"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// BackupOptions tune a vault backup.
type BackupOptions struct {
	Paths    []string         // what to back up
	Archiver archiver.Options // Progress is filled in if nil
	Parent   func(*repository.Repository) *repository.Point
	// RetainUntil keeps the point past the policy's retention.
	RetainUntil *time.Time
	// Exclude lists the policy's exclusions (paths or patterns).
	Exclude []string
	// CacheDir holds the local tree cache (a folder per repository);
	// empty means the user's cache folder. Without the cache, a re-backup
	// would fetch every folder listing of the previous point from Azure.
	CacheDir string
}

// BackupResult is a finished vault backup.
type BackupResult struct {
	JobID  string
	Result *archiver.Result
	Queued bool // the outcome waits in pending/ for the control plane
}

// Backup runs one backup as a job of the vault: it reports progress while
// it runs, registers the point (whose time the server sets), and reports
// the outcome with every skipped file, or the failure with its reason.
func (s *Session) Backup(ctx context.Context, o BackupOptions) (*BackupResult, error) {
	// Reports an outage kept go first, so the vault learns of older points
	// before newer ones.
	if n, err := s.FlushPending(ctx); err != nil {
		slog.Warn("earlier reports still waiting for the control plane", "count", n, "err", err)
	}
	lock, err := lockJob(s.Dir)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	job, err := s.StartJob(ctx, wire.JobBackup)
	if err != nil {
		return nil, err
	}
	out := &BackupResult{JobID: job.ID}
	res, err := s.runBackup(ctx, job, o)
	if err != nil {
		report := failureReport(ctx, err)
		// Report with a fresh context: the job's own may be the one cancelled.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if ferr := job.Finish(rctx, report); ferr != nil && !errors.Is(ferr, ErrQueued) {
			err = fmt.Errorf("%w (and the failure could not be reported: %v)", err, ferr)
		}
		return out, err
	}
	out.Result = res
	p := res.Point
	report := wire.JobReport{Status: wire.StatusCompleted, PointID: p.ID, Progress: wire.Progress{
		FilesDone: p.Summary.Files, FilesTotal: p.Summary.Files, BytesDone: p.Summary.Bytes, BytesTotal: p.Summary.Bytes,
		BytesUploaded: p.Summary.BytesStored}, Change: changeCounters(res.Changes)}
	if len(res.Warnings) > 0 {
		report.Status = wire.StatusCompletedWithWarnings
		for _, w := range res.Warnings {
			report.Skipped = append(report.Skipped, wire.Skipped{Path: w.Path, Reason: w.Err})
		}
	}
	perr := job.AddPoint(ctx, p.ID, o.RetainUntil)
	if perr != nil && !errors.Is(perr, ErrQueued) {
		report = wire.JobReport{Status: wire.StatusFailed, ErrorCode: "point_refused", Message: perr.Error()}
	}
	ferr := job.Finish(ctx, report)
	out.Queued = errors.Is(perr, ErrQueued) || errors.Is(ferr, ErrQueued)
	if perr != nil && !errors.Is(perr, ErrQueued) {
		return out, fmt.Errorf("the control plane refused the recovery point: %w", perr)
	}
	if ferr != nil && !errors.Is(ferr, ErrQueued) {
		return out, fmt.Errorf("report the backup's outcome: %w", ferr)
	}
	return out, nil
}

func (s *Session) runBackup(ctx context.Context, job *Job, o BackupOptions) (*archiver.Result, error) {
	var finished *crypto.ID // the new point's root tree, whose listings the cache's bundle holds
	r, err := s.Repository(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	opts := o.Archiver
	if opts.Progress == nil {
		opts.Progress = &archiver.Progress{}
	}
	if opts.Hostname == "" {
		opts.Hostname = s.Config.MachineName
	}
	if len(o.Exclude) > 0 && opts.Exclude == nil {
		fold := runtime.GOOS == "windows"
		opts.Exclude = func(p string) bool {
			slash := filepath.ToSlash(p)
			for _, pat := range o.Exclude {
				if policy.MatchExclude(pat, slash, fold) {
					return true
				}
			}
			return false
		}
	}
	if o.Parent != nil && opts.Parent == nil {
		opts.Parent = o.Parent(r)
	}
	if opts.Trees == nil {
		if tc, err := cache.ForRepository(o.CacheDir, r.Config().ID, r); err != nil {
			slog.Warn("no local tree cache: the previous point's folder listings are fetched from storage", "err", err)
		} else {
			opts.Trees, opts.Saved = tc, tc
			defer tc.Close()
			var parent *crypto.ID
			if opts.Parent != nil {
				parent = &opts.Parent.Tree
			}
			tc.BeginBackup(parent, opts.DryRun)
			defer func() { tc.EndBackup(finished) }()
		}
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				pr := opts.Progress
				job.Progress(ctx, wire.Progress{FilesDone: pr.FilesDone.Load(), FilesTotal: pr.FilesSeen.Load(),
					BytesDone: pr.BytesDone.Load(), BytesTotal: pr.BytesSeen.Load(), BytesUploaded: pr.BytesStored.Load()})
			}
		}
	}()
	res, err := archiver.Backup(ctx, r, o.Paths, opts)
	if err == nil && !opts.DryRun {
		finished = &res.Point.Tree
	}
	return res, err
}

// changeCounters is what the control plane's ransomware alarm compares:
// counts only, never a name or content.
func changeCounters(c archiver.Changes) *wire.ChangeCounters {
	return &wire.ChangeCounters{ParentFiles: c.ParentFiles, Files: c.Files, Changed: c.Changed, Renamed: c.Renamed,
		Incompressible: c.Incompressible, Overwritten: c.Overwritten, NewExtension: c.NewExtension, TopNewExtension: c.TopNewExtension, Deleted: c.Deleted}
}

// failureReport is the outcome of a backup that returned err. Whether it
// was cancelled is the caller's context's to say, not the error's: an
// upload that fails may carry context.Canceled from the stages it stopped,
// and a job recorded as cancelled raises no alert.
func failureReport(ctx context.Context, err error) wire.JobReport {
	if errors.Is(ctx.Err(), context.Canceled) {
		return wire.JobReport{Status: wire.StatusCancelled, ErrorCode: "cancelled", Message: "the backup was stopped on the machine"}
	}
	return wire.JobReport{Status: wire.StatusFailed, ErrorCode: errorCode(err), Message: err.Error()}
}

// errorCode names a failure for the job list; the message has the detail.
func errorCode(err error) string {
	switch {
	case errors.Is(err, repository.ErrWrongPassphrase):
		return "wrong_passphrase"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "backup_failed"
}
