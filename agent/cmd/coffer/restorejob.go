package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/shared/wire"
)

// restoreJob records a vault-mode restore as a job of the vault, as MARS
// lists its recoveries: admins see who restored what, when, where to, and
// how it ended. The job is this machine's, also for --from-machine.
type restoreJob struct {
	job  *vault.Job
	prog *restorer.Progress
	done chan struct{}
}

// startRestoreJob starts the job, or returns nil outside vault mode. A
// control plane that cannot be reached does not stop the restore, the
// thing people need most when things are broken: it is told on stderr
// that this restore goes unrecorded.
func startRestoreJob(ctx context.Context, stderr io.Writer, f *repoFlags, prog *restorer.Progress) *restoreJob {
	if f.session == nil {
		return nil
	}
	job, err := f.session.StartJob(ctx, wire.JobRestore)
	if err != nil {
		fmt.Fprintf(stderr, "warning: the vault does not record this restore as a job: %v\n", err)
		return nil
	}
	j := &restoreJob{job: job, prog: prog, done: make(chan struct{})}
	go func() {
		t := time.NewTicker(2 * time.Second) // Job.Progress sends at most every 30 s
		defer t.Stop()
		for {
			select {
			case <-j.done:
				return
			case <-t.C:
				job.Progress(ctx, j.progress())
			}
		}
	}()
	return j
}

func (j *restoreJob) progress() wire.Progress {
	return wire.Progress{FilesDone: j.prog.FilesDone.Load(), FilesTotal: j.prog.FilesTotal.Load(),
		BytesDone: j.prog.BytesDone.Load(), BytesTotal: j.prog.BytesTotal.Load()}
}

// finish reports the outcome. A report the control plane cannot take now
// waits in pending/ like a backup's; any other failure to report is a
// warning, since the files are restored either way.
func (j *restoreJob) finish(ctx context.Context, stderr io.Writer, r restoreOutcome) {
	if j == nil {
		return
	}
	close(j.done)
	report := r.report(ctx.Err())
	report.Progress = j.progress()
	// A fresh context: the command's own may be the one cancelled.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := j.job.Finish(rctx, report); err != nil && !errors.Is(err, vault.ErrQueued) {
		fmt.Fprintf(stderr, "warning: the restore's outcome could not be reported to the vault (job %s): %v\n", j.job.ID, err)
	}
}

// restoreOutcome is what a restore did, for its job.
type restoreOutcome struct {
	point  *repository.Point // nil when it failed before a point was chosen
	source string            // --from-machine, or "" for this machine's own
	target string
	res    *restorer.Result
	err    error
}

func (o restoreOutcome) report(ctxErr error) wire.JobReport {
	what := "restore"
	if o.point != nil {
		what = "restore of point " + o.point.ID[:12]
	}
	if o.source != "" {
		what += " of machine " + o.source
	}
	what += " to " + o.target
	switch {
	case o.err != nil && errors.Is(ctxErr, context.Canceled):
		return wire.JobReport{Status: wire.StatusCancelled, ErrorCode: "cancelled", Message: what + " was stopped on the machine"}
	case o.err != nil:
		return wire.JobReport{Status: wire.StatusFailed, ErrorCode: "restore_failed", Message: what + ": " + o.err.Error(), PointID: o.pointID()}
	}
	res := o.res
	r := wire.JobReport{Status: wire.StatusCompleted, PointID: o.pointID(),
		Message: fmt.Sprintf("%s: %d files, %d folders, %d links; %d copies beside existing files, %d skipped",
			what, res.Files, res.Dirs, res.Links, len(res.Copies), res.Skipped)}
	for _, fl := range res.Failed {
		r.Skipped = append(r.Skipped, wire.Skipped{Path: fl.Path, Reason: "not restored: " + fl.Err})
	}
	for _, fl := range res.Warnings {
		r.Skipped = append(r.Skipped, wire.Skipped{Path: fl.Path, Reason: fl.Err})
	}
	switch {
	case len(res.Failed) > 0:
		r.Status, r.ErrorCode = wire.StatusFailed, "restore_incomplete"
		r.Message += fmt.Sprintf("; %d paths not restored", len(res.Failed))
	case len(res.Warnings) > 0:
		r.Status = wire.StatusCompletedWithWarnings
	}
	return r
}

func (o restoreOutcome) pointID() string {
	if o.point == nil {
		return ""
	}
	return o.point.ID
}
