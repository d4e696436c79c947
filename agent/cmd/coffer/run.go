package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/logging"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/scheduler"
	"github.com/coffer-backup/coffer/agent/service"
	"github.com/coffer-backup/coffer/agent/throttle"
	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/shared/policy"
)

// Defaults of `coffer run`.
const (
	policyEvery = 5 * time.Minute  // how often the policy is checked (cheap: an ETag)
	retryAfter  = 15 * time.Minute // a failed scheduled backup is tried once more
)

func newRun() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: follow the vault's policy and back up on schedule",
		Long: `Run the agent until stopped. It keeps the vault's policy in sync, backs up on
the policy's schedule in its time zone (correctly across daylight-saving
changes), catches up one missed run after the machine was off, never runs two
jobs at once, paces uploads by the policy's work and non-work bandwidth, and
reports every job. Reports that cannot reach the control plane are kept and
sent when it answers again. Install it as a service with
` + "`coffer service install`" + `.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			setBackupGC(15) // it runs backups: see newBackup
			if dir == "" {
				dir = os.Getenv(service.EnvConfigDir)
			}
			s, err := vaultSession(dir)
			if err != nil {
				return err
			}
			logDir := os.Getenv(service.EnvLogDir)
			if logDir == "" {
				logDir = logging.DefaultDir()
			}
			log, closer, err := logging.New(logging.Options{Dir: logDir, Level: slog.LevelInfo})
			if err != nil {
				return fmt.Errorf("open the agent's log in %s: %w", logDir, err)
			}
			defer closer.Close()
			if verbose, _ := c.Flags().GetBool("verbose"); verbose {
				log = slog.New(logging.Fanout(log.Handler(), slog.Default().Handler()))
			}
			slog.SetDefault(log)
			a := newAgentRun(s, log)
			// Under the Windows service manager, Stop cancels the context.
			if ran, err := service.RunAsWindowsService(service.DefaultName, a.run); ran {
				return err
			}
			return a.run(c.Context())
		},
	}
	addConfigDir(c, &dir)
	return c
}

// agentRun is one `coffer run`.
type agentRun struct {
	s     *vault.Session
	log   *slog.Logger
	clock scheduler.Clock
	sched *scheduler.Scheduler
	up    *rate.Limiter
	pace  *throttle.Throttle

	mu   sync.Mutex
	pol  *policy.Policy
	etag string
	loc  *time.Location
}

func newAgentRun(s *vault.Session, log *slog.Logger) *agentRun {
	// Only the schedule follows the (possibly test) clock; signatures and
	// token lifetimes stay on the machine's real clock.
	a := &agentRun{s: s, log: log, clock: testClockFromEnv(), up: rate.NewLimiter(rate.Inf, 0)}
	a.pace = throttle.New(a.clock, a.up, log)
	s.Upload = a.up
	return a
}

func (a *agentRun) statePath() string { return filepath.Join(a.s.Dir, "schedule.json") }

func (a *agentRun) loadState() scheduler.State {
	var st scheduler.State
	if b, err := os.ReadFile(a.statePath()); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			a.log.Warn("schedule state is damaged; starting afresh", "err", err)
		}
	}
	return st
}

func (a *agentRun) saveState(st scheduler.State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := a.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.statePath())
}

func (a *agentRun) run(ctx context.Context) error {
	a.sched = scheduler.New(a.clock, a.loadState(), a.saveState, a.backup, a.log)
	a.sched.RetryAfter = retryAfter
	if _, ok := a.clock.(*fileClock); ok {
		a.sched.MaxWait = 100 * time.Millisecond // notice the test moving time
	}
	a.log.Info("agent started", "machine", a.s.Config.MachineName, "vault", a.s.Config.VaultName)
	a.syncPolicy(ctx)
	go a.pace.Run(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.clock.After(a.syncEvery()):
				a.syncPolicy(ctx)
				if n, err := a.s.FlushPending(ctx); err != nil {
					a.log.Warn("reports still waiting for the control plane", "count", n, "err", err)
				}
			}
		}
	}()
	err := a.sched.Run(ctx)
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		a.log.Info("agent stopped")
		return nil
	}
	return err
}

func (a *agentRun) syncEvery() time.Duration {
	if _, ok := a.clock.(*fileClock); ok {
		return 200 * time.Millisecond
	}
	return policyEvery
}

// syncPolicy fetches the policy if it changed; an outage keeps the last one.
func (a *agentRun) syncPolicy(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	a.mu.Lock()
	etag := a.etag
	a.mu.Unlock()
	pol, err := a.s.Policy(ctx, etag)
	switch {
	case errors.Is(err, vault.ErrNoPolicy):
		a.log.Warn("no policy assigned yet; nothing is scheduled", "err", err)
		return
	case pol != nil && err != nil:
		a.log.Error("the vault's policy is not usable here", "policy", pol.Doc.Name, "err", err)
		return
	case err != nil:
		a.log.Warn("policy not refreshed; keeping the last one", "err", err)
		return
	case pol == nil:
		return // unchanged since etag
	}
	p, doc := pol.Policy, pol.Doc
	if err := a.sched.SetSchedule(p.Schedule); err != nil {
		a.log.Error("the vault's policy is not usable here", "policy", doc.Name, "err", err)
		return
	}
	loc, _ := time.LoadLocation(p.Schedule.TimeZone)
	a.mu.Lock()
	a.pol, a.etag, a.loc = p, doc.ETag, loc
	a.mu.Unlock()
	a.pace.Set(p.Throttle, loc)
	a.log.Info("policy applied", "policy", doc.Name, "next", a.sched.Next())
}

// backup is the scheduler's job.
func (a *agentRun) backup(ctx context.Context, scheduled time.Time, catchUp bool) error {
	a.mu.Lock()
	p := a.pol
	a.mu.Unlock()
	if p == nil {
		return errors.New("no policy yet")
	}
	if _, err := a.s.FlushPending(ctx); err != nil {
		a.log.Warn("earlier reports still waiting", "err", err)
	}
	a.log.Info("backup starting", "scheduled", scheduled, "catchUp", catchUp, "paths", strings.Join(p.Include, ", "))
	o := vault.BackupOptions{Paths: p.Include, Exclude: p.Exclude}
	o.Parent = func(r *repository.Repository) *repository.Point {
		return findParent(ctx, r, p.Include, a.s.Config.MachineName)
	}
	// On Windows, read from a shadow copy of each volume (the service runs
	// elevated) unless the policy says useVSS false; removed when the
	// backup ends, or by the next one.
	readFrom, vssDone, err := shadowCopies(p.VSS(), p.Include)
	if err != nil {
		a.log.Error("backup failed", "err", err)
		return err
	}
	defer vssDone()
	o.Archiver.ReadFrom = readFrom
	o.Archiver.Workers, o.Archiver.SmallReads = backupProcs(), smallReadProcs
	res, err := a.s.Backup(ctx, o)
	if err != nil {
		a.log.Error("backup failed", "err", err)
		return err
	}
	a.log.Info("backup finished", "point", res.Result.Point.ID, "job", res.JobID, "warnings", len(res.Result.Warnings), "reportQueued", res.Queued)
	return nil
}

// fileClock is a test clock: the time is read from a file the test
// writes, so an emulator test can drive `coffer run` through days and
// daylight-saving changes. It is enabled only by COFFER_TEST_CLOCK.
type fileClock struct {
	path string
	mu   sync.Mutex
	last time.Time
}

func testClockFromEnv() scheduler.Clock {
	if p := os.Getenv("COFFER_TEST_CLOCK"); p != "" {
		return &fileClock{path: p}
	}
	return scheduler.SystemClock{}
}

// Now reads the file; while it is being rewritten, the last good time.
func (f *fileClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, err := os.ReadFile(f.path); err == nil {
		if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err == nil {
			f.last = t
		}
	}
	if f.last.IsZero() {
		f.last = time.Now()
	}
	return f.last
}

// After fires once the file's time is d past what it was at the call, or
// once d of real time has passed, whichever is first. The real-time bound
// matters: a caller that read Now just before the test moved the clock
// asks for d from a time already gone, and the file's time may never move
// again (the scheduler's 100 ms look-again then waited forever, one run
// in many under load). Firing early only makes the scheduler look again.
func (f *fileClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	until := f.Now().Add(d)
	deadline := time.Now().Add(d)
	go func() {
		for {
			if now := f.Now(); !now.Before(until) || !time.Now().Before(deadline) {
				ch <- now
				return
			}
			time.Sleep(20 * time.Millisecond) // real time passing while the test moves the file's
		}
	}()
	return ch
}
