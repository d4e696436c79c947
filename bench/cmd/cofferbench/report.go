//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/bench/measure"
)

type report struct {
	cfg           config
	work          string
	tools         []*tool
	notes         []string
	started       time.Time
	cachesDropped bool
	cacheNote     string
	datasets      []*datasetResult
	mount         *mountResult
}

func probeDropCaches() (bool, string) {
	if err := measure.DropCaches(); err != nil {
		return false, fmt.Sprintf("NOT dropped before timed steps (%v): figures after the first run of a step are warm-cache", err)
	}
	return true, "dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) before every timed step: all reads come from disk"
}

// The targets issue 13 sets against restic, on each dataset in one run.
// Speedups are restic's time ÷ Coffer's (at least); ratios are Coffer's
// figure ÷ restic's (at most).
const (
	targetBackupSpeedup   = 2.5
	targetNoChangeSpeedup = 4.0
	targetChangedSpeedup  = 3.0
	targetRestoreSpeedup  = 2.0
	targetDumpSpeedup     = 3.0 // single-file restore, on the total time (start to exit)
	targetSizeRatio       = 0.97
	targetRSSRatio        = 0.5 // the largest backup command's, and the restore's
	targetPassFraction    = 0.60
)

// stepTargets are the speedup targets of the timed steps.
var stepTargets = [numSteps]float64{
	stepBackup:   targetBackupSpeedup,
	stepNoChange: targetNoChangeSpeedup,
	stepChanged:  targetChangedSpeedup,
	stepRestore:  targetRestoreSpeedup,
}

// speedupVerdict is a time row's ratio, target and verdict: restic's time
// ÷ Coffer's, at least want (0: no target). ok says both were measured.
func speedupVerdict(cof, res time.Duration, ok bool, want float64) (ratio, tgt, verdict string) {
	tgt = "—"
	if want > 0 {
		tgt = fmt.Sprintf("≥ %.1f× faster", want)
	}
	if !ok || cof <= 0 || res <= 0 {
		return "—", tgt, na(want > 0)
	}
	x := res.Seconds() / cof.Seconds()
	return fmt.Sprintf("%.2f×", x), tgt, met(want > 0, x >= want)
}

// ratioVerdict is a size or memory row's ratio, target and verdict:
// Coffer's figure ÷ restic's, at most limit (0: no target), printed with
// prec decimals so a close call against 0.97 shows which side it is on.
func ratioVerdict(cof, res int64, ok bool, limit float64, prec int) (ratio, tgt, verdict string) {
	tgt = "—"
	if limit > 0 {
		tgt = "≤ " + strconv.FormatFloat(limit, 'f', -1, 64) + "× restic"
	}
	if !ok || res <= 0 {
		return "—", tgt, na(limit > 0)
	}
	x := float64(cof) / float64(res)
	return fmt.Sprintf("%.*f×", prec, x), tgt, met(limit > 0, x <= limit)
}

// passVerdict is the single-pass row's figure, target and verdict: Coffer's
// initial backup throughput as a share of the limit, at least
// targetPassFraction.
func passVerdict(got, limit float64, ok bool) (share, tgt, verdict string) {
	tgt = fmt.Sprintf("≥ %.0f%% of the limit", 100*targetPassFraction)
	if !ok || limit <= 0 {
		return "—", tgt, "n/a"
	}
	x := got / limit
	return fmt.Sprintf("%.0f%%", 100*x), tgt, met(true, x >= targetPassFraction)
}

func (r *report) failed() bool {
	if r.mount != nil && r.mount.failed() {
		return true
	}
	for _, d := range r.datasets {
		for _, tg := range d.all() {
			if tg.err != nil || (tg.verify != "" && tg.verify != "ok") || (tg.dump != nil && tg.dump.verify != "ok") {
				return true
			}
		}
	}
	return false
}

func (d *datasetResult) all() []*target {
	if d.azurite == nil {
		return d.local
	}
	return append(d.local[:len(d.local):len(d.local)], d.azurite)
}

func (d *datasetResult) byName(name string) *target {
	for _, tg := range d.local {
		if tg.t.name == name {
			return tg
		}
	}
	return nil
}

func (r *report) markdown() string {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("## Coffer benchmark — %s\n\n", r.started.Format("2006-01-02 15:04 MST"))
	w("- Machine: %s\n", machine())
	w("- Work folder (datasets and repositories, same disk): `%s` (%s)\n", r.work, fsType(r.work))
	if r.cfg.repeat > 1 {
		w("- Scale %g, seed %d; every dataset's sequence run %d times, each figure the median run's\n", r.cfg.scale, r.cfg.seed, r.cfg.repeat)
	} else {
		w("- Scale %g, seed %d; every step run once\n", r.cfg.scale, r.cfg.seed)
	}
	w("- Page cache: %s\n", r.cacheNote)
	for _, t := range r.tools {
		w("- %s: %s — %s\n", t.name, t.version, t.flags)
	}
	for _, n := range r.notes {
		// Build errors span lines; a Markdown list item must not.
		w("- **Note:** %s\n", strings.Join(strings.Fields(n), " "))
	}
	w("\n")
	for _, d := range r.datasets {
		r.datasetTable(&b, d)
	}
	if r.mount != nil {
		r.mount.markdown(&b)
	}
	return b.String()
}

// cols are the table's tool columns: always coffer, restic and borg, so
// reports from runs with and without a tool line up.
var cols = []string{"coffer", "restic", "borg"}

func (r *report) datasetTable(b *bytes.Buffer, d *datasetResult) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### Dataset `%s`: %d files, %d folders, %.1f MiB\n\n", d.kind, d.stats.Files, d.stats.Dirs, mib(d.stats.Bytes))
	w("1%% change: %d file(s) edited (%d bytes overwritten or appended).\n\n", len(d.changed.Files), d.changed.Bytes)
	w("| Measure | coffer | restic | borg | coffer vs restic | Target | Met |\n")
	w("|---|---:|---:|---:|---:|---|---|\n")

	cof, res := d.byName("coffer"), d.byName("restic")
	row := func(name string, cell func(*target) string, ratio string, tgt string, met string) {
		w("| %s |", name)
		for _, c := range cols {
			tg := d.byName(c)
			switch {
			case tg == nil:
				w(" not run |")
			default:
				w(" %s |", cell(tg))
			}
		}
		w(" %s | %s | %s |\n", ratio, tgt, met)
	}
	timeCell := func(s step) func(*target) string {
		return func(tg *target) string {
			if r := tg.res[s]; r != nil {
				if s == stepBackup || s == stepRestore {
					return fmt.Sprintf("%.2f s (%.0f MB/s)", r.Wall.Seconds(), mbps(d.stats.Bytes, r.Wall))
				}
				return fmt.Sprintf("%.2f s", r.Wall.Seconds())
			}
			return failedCell(tg)
		}
	}
	rssCell := func(s step) func(*target) string {
		return func(tg *target) string {
			if r := tg.res[s]; r != nil {
				return fmt.Sprintf("%.0f MiB", mib(r.MaxRSS))
			}
			return failedCell(tg)
		}
	}
	both := cof != nil && res != nil && cof.err == nil && res.err == nil
	for _, s := range []step{stepBackup, stepNoChange, stepChanged, stepRestore} {
		ok := cof != nil && res != nil && cof.res[s] != nil && res.res[s] != nil
		var c, rr time.Duration
		if ok {
			c, rr = cof.res[s].Wall, res.res[s].Wall
		}
		a, t, m := speedupVerdict(c, rr, ok, stepTargets[s])
		row(stepNames[s], timeCell(s), a, t, m)
	}

	// The single-file restore: the target is on the total time; the time
	// to first byte is shown beside it.
	dumpOK := cof != nil && res != nil && cof.dump != nil && res.dump != nil
	dumpTimes := func(first bool) (time.Duration, time.Duration) {
		if !dumpOK {
			return 0, 0
		}
		if first {
			return cof.dump.firstByte, res.dump.firstByte
		}
		return cof.dump.total, res.dump.total
	}
	dumpCell := func(get func(*dumpResult) string) func(*target) string {
		return func(tg *target) string {
			switch {
			case tg.dump != nil:
				return get(tg.dump)
			case tg.t.dump == nil:
				return "not run"
			}
			return failedCell(tg)
		}
	}
	c, rr := dumpTimes(false)
	a, t, m := speedupVerdict(c, rr, dumpOK, targetDumpSpeedup)
	row(fmt.Sprintf("Single-file restore (%.2f MiB), total", mib(d.one.size)), dumpCell(func(x *dumpResult) string {
		return fmt.Sprintf("%.3f s", x.total.Seconds())
	}), a, t+" (total)", m)
	c, rr = dumpTimes(true)
	a, t, m = speedupVerdict(c, rr, dumpOK, 0)
	row("Single-file restore, time to first byte", dumpCell(func(x *dumpResult) string {
		return fmt.Sprintf("%.3f s", x.firstByte.Seconds())
	}), a, t, m)

	a, t, m = ratioVerdict(sizeOf(cof), sizeOf(res), both, targetSizeRatio, 3)
	row("Repository size (du, after 3 backups)", func(tg *target) string {
		if tg.err != nil {
			return failedCell(tg)
		}
		return fmt.Sprintf("%.1f MiB", mib(tg.size))
	}, a, t, m)
	rssRow := func(s step, limit float64) {
		ok := cof != nil && res != nil && cof.res[s] != nil && res.res[s] != nil
		var c, rr int64
		if ok {
			c, rr = cof.res[s].MaxRSS, res.res[s].MaxRSS
		}
		a, t, m := ratioVerdict(c, rr, ok, limit, 2)
		row("Peak RSS: "+strings.ToLower(stepNames[s][:1])+stepNames[s][1:], rssCell(s), a, t, m)
	}
	for _, s := range []step{stepBackup, stepNoChange, stepChanged} {
		rssRow(s, 0)
	}
	a, t, m = ratioVerdict(peakBackup(cof), peakBackup(res), both, targetRSSRatio, 2)
	row("Peak RSS, largest backup command", func(tg *target) string {
		if tg.err != nil {
			return failedCell(tg)
		}
		return fmt.Sprintf("%.0f MiB", mib(peakBackup(tg)))
	}, a, t, m)
	rssRow(stepRestore, targetRSSRatio)
	dumpRSSok := dumpOK && res.dump.maxRSS > 0
	var dc, dr int64
	if dumpRSSok {
		dc, dr = cof.dump.maxRSS, res.dump.maxRSS
	}
	a, t, m = ratioVerdict(dc, dr, dumpRSSok, 0, 2)
	row("Peak RSS: single-file restore", dumpCell(func(x *dumpResult) string {
		return fmt.Sprintf("%.0f MiB", mib(x.maxRSS))
	}), a, t, m)

	limit := mbps(d.passBytes, d.passTime)
	passOK := cof != nil && cof.res[stepBackup] != nil
	var got float64
	if passOK {
		got = mbps(d.stats.Bytes, cof.res[stepBackup].Wall)
	}
	a, t, m = passVerdict(got, limit, passOK)
	row("Initial backup vs the single-pass limit", func(tg *target) string {
		if r := tg.res[stepBackup]; r != nil && limit > 0 {
			return fmt.Sprintf("%.0f%%", 100*mbps(d.stats.Bytes, r.Wall)/limit)
		}
		return failedCell(tg)
	}, a, t, m)
	row("CPU time of initial backup (user+sys)", func(tg *target) string {
		if r := tg.res[stepBackup]; r != nil {
			return fmt.Sprintf("%.1f s", (r.User + r.Sys).Seconds())
		}
		return failedCell(tg)
	}, "—", "—", "")
	row("Local cache after the run (du)", func(tg *target) string {
		return fmt.Sprintf("%.1f MiB", mib(tg.cacheSz))
	}, "—", "—", "")
	row("Restore matches source", func(tg *target) string {
		switch {
		case tg.verify == "ok":
			return "ok"
		case tg.verify != "":
			return "**MISMATCH**"
		}
		return failedCell(tg)
	}, "—", "—", "")
	row("Single-file restore matches source", func(tg *target) string {
		switch {
		case tg.dump != nil && tg.dump.verify == "ok":
			return "ok"
		case tg.dump != nil:
			return "**MISMATCH**"
		case tg.t.dump == nil:
			return "not run"
		}
		return failedCell(tg)
	}, "—", "—", "")
	w("\ncoffer vs restic: for times, restic's time ÷ Coffer's (above 1× Coffer is faster); for size and memory, Coffer's ÷ restic's (below 1× Coffer is smaller). MB/s is dataset bytes ÷ wall time.\n\n")
	if d.one.rel != "" {
		w("Single-file restore: `%s` (%d bytes), the dataset's file closest to 1 MiB, from the latest backup to a pipe the harness reads (caches dropped); total is start to the tool's exit, and the target compares the total.", d.one.rel, d.one.size)
		if d.one.size < oneFileSize/2 || d.one.size > 2*oneFileSize {
			w(" This dataset has no file near 1 MiB at this scale, so the figure is for a file of %.2f MiB.", mib(d.one.size))
		}
		w("\n\n")
	}
	w("Single-pass limit (read every file + BLAKE3 + AES-256-GCM, %d cores, %d readers, caches dropped): **%.0f MB/s** (%.2f s).\n\n", runtime.GOMAXPROCS(0), passWorkersPerCore*runtime.GOMAXPROCS(0), limit, d.passTime.Seconds())
	floorTable(b, d)

	for _, tg := range d.all() {
		if tg.err != nil {
			w("- **%s failed:** %v (log: `%s`)\n", tg.label, tg.err, tg.log.Name())
		}
		if tg.warnings > 0 {
			w("- %s: %d command(s) completed with warnings (see `%s`)\n", tg.label, tg.warnings, tg.log.Name())
		}
		if tg.verify != "" && tg.verify != "ok" {
			w("- **%s RESTORE %s**\n", tg.label, tg.verify)
		}
		if tg.dump != nil && tg.dump.verify != "ok" {
			w("- **%s SINGLE-FILE RESTORE %s**\n", tg.label, tg.dump.verify)
		}
	}
	for _, n := range d.notes {
		w("- %s\n", n)
	}

	if az := d.azurite; az != nil {
		w("\nCoffer against Azurite (local emulator over HTTP, same disk; Azurite's own CPU shares the %d cores):\n\n", runtime.GOMAXPROCS(0))
		w("| Step | coffer, local folder | coffer, Azurite | Azurite / local |\n|---|---:|---:|---:|\n")
		for _, s := range []step{stepBackup, stepNoChange, stepChanged, stepRestore} {
			l, z := "—", "—"
			x := "—"
			if cof != nil && cof.res[s] != nil {
				l = fmt.Sprintf("%.2f s", cof.res[s].Wall.Seconds())
			}
			if az.res[s] != nil {
				z = fmt.Sprintf("%.2f s", az.res[s].Wall.Seconds())
				if cof != nil && cof.res[s] != nil {
					x = fmt.Sprintf("%.2f×", az.res[s].Wall.Seconds()/cof.res[s].Wall.Seconds())
				}
			} else {
				z = failedCell(az)
			}
			w("| %s | %s | %s | %s |\n", stepNames[s], l, z, x)
		}
		l, z, x := "—", failedCell(az), "—"
		if cof != nil && cof.dump != nil {
			l = fmt.Sprintf("%.3f s", cof.dump.total.Seconds())
		}
		if az.dump != nil {
			z = fmt.Sprintf("%.3f s", az.dump.total.Seconds())
			if cof != nil && cof.dump != nil {
				x = fmt.Sprintf("%.2f×", az.dump.total.Seconds()/cof.dump.total.Seconds())
			}
		}
		w("| Single-file restore, total | %s | %s | %s |\n", l, z, x)
		w("| Azurite data folder (du) | | %.1f MiB | |\n", mib(az.size))
		w("| Restore matches source | | %s | |\n", map[bool]string{true: "ok", false: "**" + strings.TrimSpace(az.verify+" "+failedCell(az)) + "**"}[az.verify == "ok"])
	}
	w("\n")
}

func failedCell(tg *target) string {
	if tg.err != nil {
		return "failed"
	}
	return "—"
}

func sizeOf(tg *target) int64 {
	if tg == nil {
		return 0
	}
	return tg.size
}

// peakBackup is the largest peak RSS of the three backup commands.
func peakBackup(tg *target) int64 {
	if tg == nil {
		return 0
	}
	var p int64
	for _, r := range tg.res[:stepRestore] {
		if r != nil {
			p = max(p, r.MaxRSS)
		}
	}
	return p
}

func na(target bool) string {
	if target {
		return "n/a"
	}
	return ""
}

func met(target, ok bool) string {
	switch {
	case !target:
		return ""
	case ok:
		return "yes"
	}
	return "**no**"
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		mem = fmt.Sprintf(", %.0f GiB RAM", float64(si.Totalram)*float64(si.Unit)/(1<<30))
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores%s%s, %s %s/%s", cpu, runtime.NumCPU(), mem, kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// fsType names the file system the work folder is on, from /proc/mounts:
// the longest mount point that prefixes the folder.
func fsType(dir string) string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "file system unknown"
	}
	best, typ, dev := "", "unknown", ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, typ, dev = mp, f[2], f[0]
		}
	}
	return fmt.Sprintf("%s on %s", typ, dev)
}

// floorTable is the floors measured in the run, each against restic's time
// for the step it bounds: restic's time ÷ the floor is the best ratio any
// tool could reach, so a target above it is out of reach on this machine.
func floorTable(b *bytes.Buffer, d *datasetResult) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("Floors measured in this run:\n\n")
	w("| Step | Floor (least work of the step) | Floor time | restic | Best possible ratio (restic ÷ floor) | Target | Target reachable? |\n")
	w("|---|---|---:|---:|---:|---|---|\n")
	res := d.byName("restic")
	rows := []struct {
		s     step
		what  string
		floor time.Duration
	}{
		{stepBackup, "read data extents + chunk (CDC) + BLAKE3 + compress (auto) + AES-256-GCM + write 16 MiB files", d.floors.backup},
		{stepNoChange, "walk every folder + lstat every entry", d.floors.walk},
		{stepChanged, fmt.Sprintf("walk + lstat, and read the %d changed file(s)", len(d.changed.Files)), d.floors.changed},
		{stepRestore, "create folders and files, write non-zero data, truncate sparse, chmod, chtimes (no fsync)", d.floors.write},
	}
	for _, r := range rows {
		ft, rt, ratio, reach := "—", "—", "—", "—"
		if r.floor > 0 {
			// Walks take milliseconds at small scales: three decimals.
			ft = fmt.Sprintf("%.3f s", r.floor.Seconds())
			if r.s == stepBackup || r.s == stepRestore {
				// Dataset bytes, as in the tools' rows, though the backup
				// floor reads only the data extents.
				ft = fmt.Sprintf("%.3f s (%.0f MB/s)", r.floor.Seconds(), mbps(d.stats.Bytes, r.floor))
			}
		}
		var rw time.Duration
		if res != nil && res.res[r.s] != nil {
			rw = res.res[r.s].Wall
			rt = fmt.Sprintf("%.2f s", rw.Seconds())
		}
		want := stepTargets[r.s]
		if r.floor > 0 && rw > 0 {
			x := rw.Seconds() / r.floor.Seconds()
			ratio = fmt.Sprintf("%.2f×", x)
			reach = "yes"
			if x < want {
				reach = "no: out of reach"
			}
		}
		w("| %s | %s | %s | %s | %s | ≥ %.1f× faster | %s |\n", stepNames[r.s], r.what, ft, rt, ratio, want, reach)
	}
	w("\nA floor is work every backup or restore of that step must do at least, measured on the same disk with caches dropped (%d goroutines), so restic's time ÷ the floor is the highest ratio any tool could reach here.", passWorkers())
	if d.floors.backup > 0 {
		w(" The initial-backup floor read %.1f MiB of the dataset's %.1f MiB (holes are not read) and compressed, sealed and wrote each distinct chunk once, without fsync; its MB/s, like the tools', is dataset bytes ÷ time.", mib(d.floors.backupBytes), mib(d.stats.Bytes))
	}
	w("\n\n")
	openFloorTable(b, d)
	memoryFloorTable(b, d)
	sizeFloorTable(b, d)
}

// openFloorTable adds to the floors of the steps that take a second or
// less what every Coffer command does first: open the repository, whose
// Argon2id key derivation is a deliberate cost (`coffer config show`, in
// the same run). restic's time ÷ that sum is the best ratio Coffer could
// reach without weakening the passphrase's protection.
func openFloorTable(b *bytes.Buffer, d *datasetResult) {
	open := d.floors.open
	res := d.byName("restic")
	if open == nil || res == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("Coffer's floors (the step's floor above, plus opening the repository: %.2f s in this run):\n\n", open.Wall.Seconds())
	w("| Step | Floor | Floor time | restic | Best possible ratio for Coffer | Target | Target reachable? |\n")
	w("|---|---|---:|---:|---:|---|---|\n")
	stepWall := func(s step) time.Duration {
		if res.res[s] == nil {
			return 0
		}
		return res.res[s].Wall
	}
	var dump time.Duration
	if res.dump != nil {
		dump = res.dump.total
	}
	rows := []struct {
		name, what string
		step       time.Duration // the step's own floor, added to the open
		measured   bool
		restic     time.Duration
		want       float64
	}{
		{stepNames[stepNoChange], "open + walk + lstat", d.floors.walk, d.floors.walk > 0, stepWall(stepNoChange), targetNoChangeSpeedup},
		{stepNames[stepChanged], "open + walk + lstat + read the changed files", d.floors.changed, d.floors.changed > 0, stepWall(stepChanged), targetChangedSpeedup},
		{"Single-file restore, total", "open (the file's own read left out)", 0, true, dump, targetDumpSpeedup},
		{stepNames[stepRestore], "open + create and write every file", d.floors.write, d.floors.write > 0, stepWall(stepRestore), targetRestoreSpeedup},
	}
	for _, r := range rows {
		if !r.measured {
			continue
		}
		floor := open.Wall + r.step
		rt, ratio, reach := "—", "—", "—"
		if r.restic > 0 {
			rt = fmt.Sprintf("%.2f s", r.restic.Seconds())
			x := r.restic.Seconds() / floor.Seconds()
			ratio = fmt.Sprintf("%.2f×", x)
			reach = "yes"
			if x < r.want {
				reach = "no: out of reach"
			}
		}
		w("| %s | %s | %.3f s | %s | %s | ≥ %.1f× faster | %s |\n", r.name, r.what, floor.Seconds(), rt, ratio, r.want, reach)
	}
	w("\nEvery Coffer command first derives the repository key with Argon2id (64 MiB, RFC 9106's second recommended setting), which no faster code can skip; `coffer config show` does that and nothing else. The sum is still a floor: it leaves out reading the index and the previous point's listings.\n\n")
}

// sizeFloorTable sets the size floor (sizefloor.go) against restic's
// repository for the size target: floor ÷ restic's size is the lowest
// ratio a repository compressing with zstd could reach.
func sizeFloorTable(b *bytes.Buffer, d *datasetResult) {
	if d.floors.size == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("Size floor measured in this run:\n\n")
	w("| Measure | Floor (least any zstd-compressing repository stores) | Floor size | restic | Lowest possible ratio (floor ÷ restic) | Target | Target reachable? |\n")
	w("|---|---|---:|---:|---:|---|---|\n")
	rs, ratio, reach := "—", "—", "—"
	if res := d.byName("restic"); res != nil && res.err == nil && res.size > 0 {
		rs = fmt.Sprintf("%.1f MiB", mib(res.size))
		x := float64(d.floors.size) / float64(res.size)
		ratio = fmt.Sprintf("%.3f× (lowest possible)", x)
		reach = "yes"
		if x > targetSizeRatio {
			reach = "no: out of reach for zstd"
		}
	}
	w("| Repository size (du, after 3 backups) | the latest tree's distinct chunks (Coffer's chunker), once each, as one zstd stream at klauspost's strongest level with a %d MiB window; no encryption, headers, trees or index | %.1f MiB | %s | %s | ≤ %s× restic | %s |\n",
		sizeFloorWindow>>20, mib(d.floors.size), rs, ratio, strconv.FormatFloat(targetSizeRatio, 'f', -1, 64), reach)
	w("\nA repository compresses each chunk on its own, so its matches reach back one chunk at most, and everything it adds (encryption, headers, trees, the index, the older versions of the changed files) makes it larger: no zstd level or setting can store this data in less. The floor read %.1f MiB. Other compressors are not bounded by it: xz, or recompressing the deflate streams inside documents and the JPEGs, might do better at a far greater cost.\n\n", mib(d.floors.sizeRead))
}

// memoryFloorTable sets the peak RSS of a Coffer command that only opens
// the repository against restic's peaks for the memory targets: every
// Coffer command derives the key with Argon2id (64 MiB) before anything
// else, so floor ÷ restic's peak is the lowest ratio Coffer could reach.
func memoryFloorTable(b *bytes.Buffer, d *datasetResult) {
	open := d.floors.open
	if open == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("Memory floor measured in this run:\n\n")
	w("| Measure | Floor (least memory of any Coffer command) | Floor peak RSS | restic | Lowest possible ratio (floor ÷ restic) | Target | Target reachable? |\n")
	w("|---|---|---:|---:|---:|---|---|\n")
	res := d.byName("restic")
	var restore int64
	if res != nil && res.res[stepRestore] != nil {
		restore = res.res[stepRestore].MaxRSS
	}
	for _, r := range []struct {
		name string
		peak int64
	}{
		{"Peak RSS, largest backup command", peakBackup(res)},
		{"Peak RSS: full restore", restore},
	} {
		rp, ratio, reach := "—", "—", "—"
		if r.peak > 0 {
			rp = fmt.Sprintf("%.0f MiB", mib(r.peak))
			x := float64(open.MaxRSS) / float64(r.peak)
			ratio = fmt.Sprintf("%.2f× (lowest possible)", x)
			reach = "yes"
			if x > targetRSSRatio {
				reach = "no: out of reach"
			}
		}
		w("| %s | `coffer config show`: open the repository (Argon2id key derivation, 64 MiB), nothing else | %.0f MiB | %s | %s | ≤ %s× restic | %s |\n",
			r.name, mib(open.MaxRSS), rp, ratio, strconv.FormatFloat(targetRSSRatio, 'f', -1, 64), reach)
	}
	w("\nEvery Coffer command derives the repository key with Argon2id (64 MiB, a deliberate security setting) before anything else, so no Coffer command can peak below this one, which opens the repository and reads nothing else (%.2f s). Coffer's peak ÷ restic's can be no lower than the floor's ÷ restic's.\n\n", open.Wall.Seconds())
}
