//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
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

// The targets Coffer's issue sets against restic.
const (
	targetBackupSpeedup   = 2.5
	targetNoChangeSpeedup = 3.0
	targetRestoreSpeedup  = 2.0
	targetPassFraction    = 0.60
)

func (r *report) failed() bool {
	if r.mount != nil && r.mount.failed() {
		return true
	}
	for _, d := range r.datasets {
		for _, tg := range d.all() {
			if tg.err != nil || (tg.verify != "" && tg.verify != "ok") {
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
	// speedup is restic's time over coffer's: above 1 Coffer is faster.
	speedup := func(s step, want float64) (string, string, string) {
		tgt := "—"
		if want > 0 {
			tgt = fmt.Sprintf("≥ %.1f× faster", want)
		}
		if cof == nil || res == nil || cof.res[s] == nil || res.res[s] == nil {
			return "—", tgt, na(want > 0)
		}
		x := res.res[s].Wall.Seconds() / cof.res[s].Wall.Seconds()
		return fmt.Sprintf("%.2f×", x), tgt, met(want > 0, x >= want)
	}
	// ratio is coffer's figure over restic's: at or below 1 Coffer is
	// as small or smaller.
	ratio := func(c, rr int64, ok bool, target bool) (string, string, string) {
		tgt := "—"
		if target {
			tgt = "≤ restic"
		}
		if !ok || rr == 0 {
			return "—", tgt, na(target)
		}
		x := float64(c) / float64(rr)
		return fmt.Sprintf("%.2f×", x), tgt, met(target, x <= 1)
	}

	for _, s := range []step{stepBackup, stepNoChange, stepChanged, stepRestore} {
		want := map[step]float64{stepBackup: targetBackupSpeedup, stepNoChange: targetNoChangeSpeedup, stepRestore: targetRestoreSpeedup}[s]
		a, t, m := speedup(s, want)
		row(stepNames[s], timeCell(s), a, t, m)
	}
	both := cof != nil && res != nil && cof.err == nil && res.err == nil
	a, t, m := ratio(sizeOf(cof), sizeOf(res), both, true)
	row("Repository size (du, after 3 backups)", func(tg *target) string {
		if tg.err != nil {
			return failedCell(tg)
		}
		return fmt.Sprintf("%.1f MiB", mib(tg.size))
	}, a, t, m)
	for _, s := range []step{stepBackup, stepNoChange, stepChanged, stepRestore} {
		ok := cof != nil && res != nil && cof.res[s] != nil && res.res[s] != nil
		var c, rr int64
		if ok {
			c, rr = cof.res[s].MaxRSS, res.res[s].MaxRSS
		}
		a, t, m := ratio(c, rr, ok, false)
		row("Peak RSS: "+strings.ToLower(stepNames[s][:1])+stepNames[s][1:], rssCell(s), a, t, m)
	}
	a, t, m = ratio(peakOf(cof), peakOf(res), both, true)
	row("Peak RSS, largest of all commands", func(tg *target) string {
		if tg.err != nil {
			return failedCell(tg)
		}
		return fmt.Sprintf("%.0f MiB", mib(peakOf(tg)))
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
	w("\ncoffer vs restic: for times, restic's time ÷ Coffer's (above 1× Coffer is faster); for size and memory, Coffer's ÷ restic's (below 1× Coffer is smaller). MB/s is dataset bytes ÷ wall time.\n\n")

	limit := mbps(d.passBytes, d.passTime)
	w("Single-pass limit (read every file + BLAKE3 + AES-256-GCM, %d cores, %d readers, caches dropped): **%.0f MB/s** (%.2f s).", runtime.GOMAXPROCS(0), passWorkersPerCore*runtime.GOMAXPROCS(0), limit, d.passTime.Seconds())
	if cof != nil && cof.res[stepBackup] != nil {
		got := mbps(d.stats.Bytes, cof.res[stepBackup].Wall)
		w(" Coffer's initial backup: %.0f MB/s = **%.0f%%** of the limit (target ≥ %.0f%%: %s).", got, 100*got/limit, 100*targetPassFraction, met(true, got/limit >= targetPassFraction))
	} else {
		w(" Coffer's initial backup: not measured (target ≥ %.0f%%: n/a).", 100*targetPassFraction)
	}
	w("\n\n")

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

func peakOf(tg *target) int64 {
	if tg == nil {
		return 0
	}
	var p int64
	for _, r := range tg.res {
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
