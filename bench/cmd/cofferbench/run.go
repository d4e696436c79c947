//go:build unix

package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/coffer-backup/coffer/bench/dataset"
	"github.com/coffer-backup/coffer/bench/measure"
	"github.com/coffer-backup/coffer/emulator-tests/azurite"
)

// The timed steps, in the order they run.
type step int

const (
	stepBackup   step = iota // initial backup into an empty repository
	stepNoChange             // re-backup, nothing changed
	stepChanged              // re-backup after 1% of the files changed
	stepRestore              // full restore of the latest backup to an empty folder
	numSteps
)

var stepNames = [numSteps]string{"Initial backup", "No-change re-backup", "Re-backup after 1% changed", "Full restore"}

// target is one tool against one repository on one dataset.
type target struct {
	t       *tool
	label   string // "coffer", "restic", "borg", "coffer on Azurite"
	repo    string // folder or URL
	repoDir string // what du measures
	cache   string
	log     *os.File

	res      [numSteps]*measure.Result
	backups  int
	warnings int   // commands that exited with the tool's warning code
	size     int64 // du of repoDir after all steps
	cacheSz  int64
	verify   string      // "" until restored; "ok" or what differs
	dump     *dumpResult // single-file restore from the latest backup
	err      error       // first failure; later steps are skipped
}

type datasetResult struct {
	kind      dataset.Kind
	stats     dataset.Stats
	genTime   time.Duration
	changed   dataset.Changed
	one       oneFile // what the single-file restore fetches
	passBytes int64
	passTime  time.Duration
	floors    floorTimes
	local     []*target // one per tool, local repositories
	azurite   *target   // coffer against Azurite, if measured
	notes     []string
	runs      int // repetitions the figures are the median of
}

// medianOf merges repetitions of one dataset: each command's figures are
// those of its median-time run (so a row's time and memory come from the
// same run), the limit is the median pass, and any failure or restore
// mismatch in any repetition is kept so it cannot be averaged away.
func medianOf(runs []*datasetResult) *datasetResult {
	last := runs[len(runs)-1]
	last.runs = len(runs)
	if len(runs) == 1 {
		return last
	}
	times := make([]time.Duration, len(runs))
	for i, r := range runs {
		times[i] = r.passTime
	}
	slices.Sort(times)
	last.passTime = times[len(times)/2]
	// A floor is zero where it failed: take the median of those measured.
	floor := func(get func(*floorTimes) *time.Duration) {
		var ts []time.Duration
		for _, r := range runs {
			if t := *get(&r.floors); t > 0 {
				ts = append(ts, t)
			}
		}
		var m time.Duration
		if len(ts) > 0 {
			slices.Sort(ts)
			m = ts[len(ts)/2]
		}
		*get(&last.floors) = m
	}
	floor(func(f *floorTimes) *time.Duration { return &f.walk })
	floor(func(f *floorTimes) *time.Duration { return &f.changed })
	floor(func(f *floorTimes) *time.Duration { return &f.backup })
	floor(func(f *floorTimes) *time.Duration { return &f.write })
	var opens []*measure.Result
	for _, r := range runs {
		if r.floors.open != nil {
			opens = append(opens, r.floors.open)
		}
	}
	last.floors.open = nil
	if len(opens) > 0 {
		slices.SortFunc(opens, func(a, b *measure.Result) int { return cmp.Compare(a.MaxRSS, b.MaxRSS) })
		last.floors.open = opens[len(opens)/2]
	}
	for _, tg := range last.all() {
		for s := range numSteps {
			var rs []*measure.Result
			for _, r := range runs {
				if o := r.find(tg.label); o != nil && o.res[s] != nil {
					rs = append(rs, o.res[s])
				}
			}
			if len(rs) > 0 {
				slices.SortFunc(rs, func(a, b *measure.Result) int { return cmp.Compare(a.Wall, b.Wall) })
				tg.res[s] = rs[len(rs)/2]
			}
		}
		var ds []*dumpResult
		for _, r := range runs {
			if o := r.find(tg.label); o != nil && o.dump != nil {
				ds = append(ds, o.dump)
			}
		}
		if len(ds) > 0 {
			slices.SortFunc(ds, func(a, b *dumpResult) int { return cmp.Compare(a.total, b.total) })
			tg.dump = ds[len(ds)/2]
		}
		for _, r := range runs {
			o := r.find(tg.label)
			if o == nil {
				continue
			}
			if o.err != nil && tg.err == nil {
				tg.err = o.err
			}
			if o.verify != "ok" && o.verify != "" {
				tg.verify = o.verify
			}
			if o.dump != nil && o.dump.verify != "ok" {
				tg.dump = o.dump
			}
			tg.warnings = max(tg.warnings, o.warnings)
		}
	}
	return last
}

func (d *datasetResult) find(label string) *target {
	for _, tg := range d.all() {
		if tg.label == label {
			return tg
		}
	}
	return nil
}

func runDataset(ctx context.Context, cfg config, work string, kind dataset.Kind, tools []*tool, rep int, bin *trash) (*datasetResult, error) {
	base := filepath.Join(work, string(kind))
	// The folder is ours (prepareWorkDir checked the marker); clear what a
	// previous run or repetition left, since Generate wants an empty folder
	// and the 1% change step modified the old tree.
	if err := bin.retire(base); err != nil {
		return nil, fmt.Errorf("clear %s: %w", base, err)
	}
	if !cfg.keep {
		defer bin.retire(base)
	}
	src := filepath.Join(base, "data")
	dr := &datasetResult{kind: kind}

	progress("[%s] generating at scale %g (seed %d)", kind, cfg.scale, cfg.seed)
	start := time.Now()
	st, err := dataset.Generate(src, kind, cfg.seed, cfg.scale)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	dr.stats, dr.genTime = st, time.Since(start)
	progress("[%s] %d files, %d folders, %.1f MiB in %s", kind, st.Files, st.Dirs, mib(st.Bytes), dr.genTime.Round(time.Millisecond))

	_ = measure.DropCaches()
	dr.passBytes, dr.passTime, err = singlePass(src)
	if err != nil {
		return dr, err
	}
	progress("[%s] single-pass limit: %.0f MB/s", kind, mbps(dr.passBytes, dr.passTime))
	dr.measureBackupFloor(src, filepath.Join(base, "floor-packs"))
	dr.measureWalkFloor(src)

	for _, t := range tools {
		tg, err := newTarget(t, t.name, base, string(kind))
		if err != nil {
			return dr, err
		}
		defer tg.log.Close()
		dr.local = append(dr.local, tg)
	}
	if az, stop, note := startAzurite(ctx, cfg, base, kind, tools); az != nil {
		defer stop()
		defer az.log.Close()
		dr.azurite = az
	} else if note != "" {
		dr.notes = append(dr.notes, note)
		progress("[%s] %s", kind, note)
	}
	// Each repetition starts with a different tool, so whatever the disk
	// is still doing after generation does not always land on the same one.
	all := slices.Clone(dr.all())
	if len(all) > 0 {
		k := rep % len(all)
		all = append(all[k:], all[:k]...)
	}

	// Phase 1, on the tree as generated: every tool's first backup and its
	// no-change re-backup. Tools take turns on the same tree, so the 1%
	// change below is applied once and every tool sees the same edit.
	for _, tg := range all {
		tg.initRepo(ctx)
		tg.timeBackup(ctx, stepBackup, src)
		tg.timeBackup(ctx, stepNoChange, src)
	}

	dr.changed, err = dataset.Change(src, cfg.seed, 0.01)
	if err != nil {
		return dr, fmt.Errorf("change 1%% of files: %w", err)
	}
	progress("[%s] changed %d files (%d bytes)", kind, len(dr.changed.Files), dr.changed.Bytes)
	want, err := dataset.DigestTree(src)
	if err != nil {
		return dr, fmt.Errorf("digest source: %w", err)
	}
	// Picked from the changed tree, since that is what the latest backup holds.
	if dr.one, err = pickOneFile(src, oneFileSize); err != nil {
		return dr, err
	}
	progress("[%s] single-file restore: %s (%d bytes)", kind, dr.one.rel, dr.one.size)
	dr.measureChangedFloor(src)

	// Phase 2, on the changed tree: re-backup, then restore what was just
	// backed up and compare it with the source.
	for _, tg := range all {
		tg.timeBackup(ctx, stepChanged, src)
		tg.timeRestore(ctx, base, src, want, bin)
		tg.timeDump(ctx, src, dr.one)
		tg.measureSizes()
	}
	dr.measureWriteFloor(src, filepath.Join(base, "floor-write"), bin.retire)
	if cfg.sizeFloor {
		dr.measureSizeFloor(src)
	}
	dr.measureOpenFloor(ctx, dr.byName("coffer"))
	return dr, nil
}

func newTarget(t *tool, label, base, kind string) (*target, error) {
	slug := filepath.Base(label)
	if label != t.name {
		slug = t.name + "-azurite"
	}
	logPath := filepath.Join(filepath.Dir(base), "logs", kind+"-"+slug+".log")
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	return &target{
		t: t, label: label, log: log,
		repo:    filepath.Join(base, "repo-"+slug),
		repoDir: filepath.Join(base, "repo-"+slug),
		cache:   filepath.Join(base, "cache-"+slug),
	}, nil
}

func (tg *target) run(ctx context.Context, args []string, target string) (measure.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	return measure.Run(ctx, tg.t.command(args, tg.t.env(tg.cache), target, tg.log))
}

func (tg *target) fail(what string, err error) {
	tg.err = fmt.Errorf("%s: %w", what, err)
	progress("  %s: FAILED %v (log: %s)", tg.label, tg.err, tg.log.Name())
}

func (tg *target) initRepo(ctx context.Context) {
	if tg.err != nil {
		return
	}
	if err := os.MkdirAll(tg.cache, 0o755); err != nil {
		tg.fail("init", err)
		return
	}
	if _, err := tg.run(ctx, tg.t.init(tg.repo, tg.cache), ""); err != nil {
		tg.fail("init", err)
	}
}

func (tg *target) timeBackup(ctx context.Context, s step, src string) {
	if tg.err != nil {
		return
	}
	_ = measure.DropCaches()
	tg.backups++
	r, err := tg.run(ctx, tg.t.backup(tg.repo, src, tg.cache, tg.backups), "")
	if err != nil && !tg.warned(r) {
		tg.fail(stepNames[s], err)
		return
	}
	tg.res[s] = &r
	last := ""
	if tg.t.name == "coffer" {
		last = ", point " + r.LastLine()
	}
	progress("  %-18s %-28s %8.2f s  %7.1f MiB RSS%s", tg.label, stepNames[s], r.Wall.Seconds(), mib(r.MaxRSS), last)
}

// warned reports whether a failed command only warned; the warning is
// listed in the report.
func (tg *target) warned(r measure.Result) bool {
	if tg.t.warnExit == 0 || r.ExitCode != tg.t.warnExit {
		return false
	}
	tg.warnings++
	return true
}

func (tg *target) timeRestore(ctx context.Context, base, src string, want dataset.Digest, bin *trash) {
	if tg.err != nil {
		return
	}
	dst := filepath.Join(base, "restore-"+filepath.Base(tg.repoDir))
	if err := bin.retire(dst); err != nil {
		tg.fail("restore", err)
		return
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		tg.fail("restore", err)
		return
	}
	_ = measure.DropCaches()
	r, err := tg.run(ctx, tg.t.restore(tg.repo, tg.cache, tg.backups), dst)
	if err != nil && !tg.warned(r) {
		tg.fail("restore", err)
		return
	}
	tg.res[stepRestore] = &r
	progress("  %-18s %-28s %8.2f s  %7.1f MiB RSS", tg.label, stepNames[stepRestore], r.Wall.Seconds(), mib(r.MaxRSS))

	// restic and borg recreate the source's absolute path under the
	// target; a tool may also restore the folder by its name or its
	// contents directly. Take the first layout that exists.
	root := dst
	for _, c := range []string{filepath.Join(dst, src), filepath.Join(dst, filepath.Base(src))} {
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			root = c
			break
		}
	}
	got, err := dataset.DigestTree(root)
	switch {
	case err != nil:
		tg.verify = "MISMATCH: " + err.Error()
	case !got.Equal(want):
		tg.verify = fmt.Sprintf("MISMATCH: restored %v, source %v", got, want)
	default:
		tg.verify = "ok"
	}
	if tg.verify != "ok" {
		progress("  !!! %s RESTORE %s", tg.label, tg.verify)
	}
	// Restores are as big as the dataset; drop each once checked, into the
	// trash so the next tool's restore does not create files over it.
	if err := bin.retire(dst); err != nil {
		progress("  remove restore folder: %v", err)
	}
}

func (tg *target) measureSizes() {
	if sz, err := measure.DiskUsage(tg.repoDir); err == nil {
		tg.size = sz
	} else if tg.err == nil {
		tg.fail("repository size", err)
	}
	if sz, err := measure.DiskUsage(tg.cache); err == nil {
		tg.cacheSz = sz
	}
}

// startAzurite starts an Azurite for this dataset (its own, so its data
// folder holds this dataset's repository only), creates a container and
// returns a coffer target whose repository is the container's SAS URL.
// Without coffer there is nothing to measure against it.
func startAzurite(ctx context.Context, cfg config, base string, kind dataset.Kind, tools []*tool) (*target, func(), string) {
	if !cfg.azurite {
		return nil, nil, ""
	}
	var coffer *tool
	for _, t := range tools {
		if t.name == "coffer" {
			coffer = t
		}
	}
	if coffer == nil {
		return nil, nil, "Azurite skipped: only Coffer is measured against it, and Coffer is not being measured"
	}
	tg, err := newTarget(coffer, "coffer on Azurite", base, string(kind))
	if err != nil {
		return nil, nil, "Azurite skipped: " + err.Error()
	}
	dataDir := filepath.Join(base, "azurite")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	a, err := azurite.Start(sctx, azurite.Options{DataDir: dataDir, LogPath: filepath.Join(filepath.Dir(base), "logs", string(kind)+"-azurite-server.log")})
	if err != nil {
		tg.log.Close()
		return nil, nil, fmt.Sprintf("Azurite skipped: start: %v (run `make deps` to install it)", err)
	}
	stop := func() {
		if err := a.Stop(); err != nil {
			progress("stop Azurite: %v", err)
		}
	}
	url, err := containerSAS(ctx, a, "bench-"+string(kind))
	if err != nil {
		stop()
		tg.log.Close()
		return nil, nil, "Azurite skipped: " + err.Error()
	}
	tg.repo, tg.repoDir = url, dataDir
	return tg, stop, ""
}

// containerSAS creates a container with the account key and returns its
// URL with a SAS granting what a backup client needs: create, read, list,
// write and delete.
func containerSAS(ctx context.Context, a *azurite.Azurite, name string) (string, error) {
	cred, err := azblob.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		return "", fmt.Errorf("Azurite credential: %w", err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(a.BlobURL(), cred, nil)
	if err != nil {
		return "", fmt.Errorf("Azurite client: %w", err)
	}
	if _, err := c.CreateContainer(ctx, name, nil); err != nil {
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Minute),
		ExpiryTime:    time.Now().Add(24 * time.Hour),
		Permissions:   to.Ptr(sas.ContainerPermissions{Create: true, Read: true, List: true, Write: true, Delete: true}).String(),
		ContainerName: name,
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", fmt.Errorf("sign container SAS: %w", err)
	}
	return a.BlobURL() + "/" + name + "?" + qp.Encode(), nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// mbps is decimal megabytes per second, the unit disk and network figures
// are quoted in.
func mbps(b int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(b) / 1e6 / d.Seconds()
}
