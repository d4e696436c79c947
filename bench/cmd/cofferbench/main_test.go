//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/bench/dataset"
	"github.com/coffer-backup/coffer/bench/measure"
)

func TestWorkDirRefusesAFolderItDidNotMake(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := prepareWorkDir(dir); err == nil {
		t.Fatal("accepted a non-empty folder without the marker: a run would clear it")
	}
	fresh := filepath.Join(t.TempDir(), "w")
	if _, err := prepareWorkDir(fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := prepareWorkDir(fresh); err != nil {
		t.Fatalf("second run in its own folder: %v", err)
	}
}

func TestSinglePassReadsEveryByte(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	st, err := dataset.Generate(dir, dataset.Source, 1, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	n, d, err := singlePass(dir)
	if err != nil || n != st.Bytes || d <= 0 {
		t.Fatalf("single pass read %d bytes in %v (%v), want %d", n, d, err, st.Bytes)
	}
}

func TestReportComparesCofferWithRestic(t *testing.T) {
	res := func(s float64, rss int64) *measure.Result {
		return &measure.Result{Wall: time.Duration(s * float64(time.Second)), MaxRSS: rss << 20}
	}
	log, _ := os.CreateTemp(t.TempDir(), "log")
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	cof := &target{t: &tool{name: "coffer"}, label: "coffer", log: log, size: 90 << 20, verify: "ok",
		res:  [numSteps]*measure.Result{res(10, 100), res(1, 50), res(2, 60), res(5, 80)},
		dump: &dumpResult{firstByte: sec(0.05), total: sec(0.1), maxRSS: 40 << 20, bytes: 1 << 20, verify: "ok"}}
	rst := &target{t: &tool{name: "restic"}, label: "restic", log: log, size: 100 << 20, verify: "ok",
		res:  [numSteps]*measure.Result{res(30, 90), res(2, 50), res(4, 60), res(20, 200)},
		dump: &dumpResult{firstByte: sec(0.2), total: sec(0.25), maxRSS: 60 << 20, bytes: 1 << 20, verify: "ok"}}
	d := &datasetResult{kind: dataset.Source, stats: dataset.Stats{Files: 1, Bytes: 1e9}, passBytes: 1e9, passTime: 5 * time.Second, local: []*target{cof, rst},
		one: oneFile{rel: "a/b.go", size: 1 << 20}}
	r := &report{datasets: []*datasetResult{d}}
	out := r.markdown()
	for _, want := range []string{
		"| Initial backup | 10.00 s (100 MB/s) | 30.00 s (33 MB/s) | not run | 3.00× | ≥ 2.5× faster | yes |",
		"| No-change re-backup | 1.00 s | 2.00 s | not run | 2.00× | ≥ 4.0× faster | **no** |",
		"| Re-backup after 1% changed | 2.00 s | 4.00 s | not run | 2.00× | ≥ 3.0× faster | **no** |",
		"| Full restore | 5.00 s (200 MB/s) | 20.00 s (50 MB/s) | not run | 4.00× | ≥ 2.0× faster | yes |",
		"| Single-file restore (1.00 MiB), total | 0.100 s | 0.250 s | not run | 2.50× | ≥ 3.0× faster (total) | **no** |",
		"| Single-file restore, time to first byte | 0.050 s | 0.200 s | not run | 4.00× | — |  |",
		"| Repository size (du, after 3 backups) | 90.0 MiB | 100.0 MiB | not run | 0.900× | ≤ 0.97× restic | yes |",
		"| Peak RSS: initial backup | 100 MiB | 90 MiB | not run | 1.11× | — |  |",
		"| Peak RSS, largest backup command | 100 MiB | 90 MiB | not run | 1.11× | ≤ 0.5× restic | **no** |",
		"| Peak RSS: full restore | 80 MiB | 200 MiB | not run | 0.40× | ≤ 0.5× restic | yes |",
		"| Peak RSS: single-file restore | 40 MiB | 60 MiB | not run | 0.67× | — |  |",
		"| Initial backup vs the single-pass limit | 50% | 17% | not run | 50% | ≥ 60% of the limit | **no** |",
		"| Single-file restore matches source | ok | ok | not run | — | — |  |",
		"Single-file restore: `a/b.go` (1048576 bytes)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if r.failed() {
		t.Error("a run with no failures and matching restores reported failure")
	}
	rst.dump.verify = "MISMATCH: 3 bytes, source 1048576"
	if !r.failed() || !strings.Contains(r.markdown(), "**restic SINGLE-FILE RESTORE MISMATCH: 3 bytes") {
		t.Error("a single-file restore mismatch did not fail the run")
	}
	rst.dump.verify = "ok"
	rst.verify = "MISMATCH: x"
	if !r.failed() {
		t.Error("a restore mismatch did not fail the run")
	}
}

func TestVerdicts(t *testing.T) {
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	for _, c := range []struct {
		name                string
		cof, res            time.Duration
		ok                  bool
		want                float64
		ratio, tgt, verdict string
	}{
		{"initial backup met", sec(10), sec(25), true, targetBackupSpeedup, "2.50×", "≥ 2.5× faster", "yes"},
		{"initial backup missed", sec(10), sec(24.9), true, targetBackupSpeedup, "2.49×", "≥ 2.5× faster", "**no**"},
		{"no-change needs 4×", sec(1), sec(3.9), true, targetNoChangeSpeedup, "3.90×", "≥ 4.0× faster", "**no**"},
		{"no-change at 4×", sec(1), sec(4), true, targetNoChangeSpeedup, "4.00×", "≥ 4.0× faster", "yes"},
		{"1% change needs 3×", sec(2), sec(6), true, targetChangedSpeedup, "3.00×", "≥ 3.0× faster", "yes"},
		{"restore needs 2×", sec(5), sec(9), true, targetRestoreSpeedup, "1.80×", "≥ 2.0× faster", "**no**"},
		{"single file needs 3×", sec(0.1), sec(0.31), true, targetDumpSpeedup, "3.10×", "≥ 3.0× faster", "yes"},
		{"not measured", 0, 0, false, targetBackupSpeedup, "—", "≥ 2.5× faster", "n/a"},
		{"no target", sec(1), sec(2), true, 0, "2.00×", "—", ""},
	} {
		r, tg, v := speedupVerdict(c.cof, c.res, c.ok, c.want)
		if r != c.ratio || tg != c.tgt || v != c.verdict {
			t.Errorf("%s: speedupVerdict = %q %q %q, want %q %q %q", c.name, r, tg, v, c.ratio, c.tgt, c.verdict)
		}
	}

	for _, c := range []struct {
		name                string
		cof, res            int64
		ok                  bool
		limit               float64
		prec                int
		ratio, tgt, verdict string
	}{
		{"size at 0.97", 97, 100, true, targetSizeRatio, 3, "0.970×", "≤ 0.97× restic", "yes"},
		{"size just over", 971, 1000, true, targetSizeRatio, 3, "0.971×", "≤ 0.97× restic", "**no**"},
		{"size even with restic", 100, 100, true, targetSizeRatio, 3, "1.000×", "≤ 0.97× restic", "**no**"},
		{"RSS at half", 50, 100, true, targetRSSRatio, 2, "0.50×", "≤ 0.5× restic", "yes"},
		{"RSS over half", 51, 100, true, targetRSSRatio, 2, "0.51×", "≤ 0.5× restic", "**no**"},
		{"restic figure missing", 50, 0, true, targetRSSRatio, 2, "—", "≤ 0.5× restic", "n/a"},
		{"not measured", 0, 0, false, targetSizeRatio, 3, "—", "≤ 0.97× restic", "n/a"},
		{"no target", 120, 100, true, 0, 2, "1.20×", "—", ""},
	} {
		r, tg, v := ratioVerdict(c.cof, c.res, c.ok, c.limit, c.prec)
		if r != c.ratio || tg != c.tgt || v != c.verdict {
			t.Errorf("%s: ratioVerdict = %q %q %q, want %q %q %q", c.name, r, tg, v, c.ratio, c.tgt, c.verdict)
		}
	}

	for _, c := range []struct {
		name                string
		got, limit          float64
		ok                  bool
		share, tgt, verdict string
	}{
		{"at 60%", 60, 100, true, "60%", "≥ 60% of the limit", "yes"},
		{"under", 31, 100, true, "31%", "≥ 60% of the limit", "**no**"},
		{"no limit measured", 31, 0, true, "—", "≥ 60% of the limit", "n/a"},
		{"no backup", 0, 100, false, "—", "≥ 60% of the limit", "n/a"},
	} {
		sh, tg, v := passVerdict(c.got, c.limit, c.ok)
		if sh != c.share || tg != c.tgt || v != c.verdict {
			t.Errorf("%s: passVerdict = %q %q %q, want %q %q %q", c.name, sh, tg, v, c.share, c.tgt, c.verdict)
		}
	}
}

func TestPeakBackupLeavesTheRestoreOut(t *testing.T) {
	r := func(rss int64) *measure.Result { return &measure.Result{MaxRSS: rss} }
	tg := &target{res: [numSteps]*measure.Result{r(10), nil, r(30), r(99)}}
	if got := peakBackup(tg); got != 30 {
		t.Errorf("peakBackup = %d, want 30 (the restore's 99 is its own row)", got)
	}
	if peakBackup(nil) != 0 {
		t.Error("peakBackup of no target is not 0")
	}
}
