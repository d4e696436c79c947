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
	cof := &target{t: &tool{name: "coffer"}, label: "coffer", log: log, size: 90 << 20, verify: "ok",
		res: [numSteps]*measure.Result{res(10, 100), res(1, 50), res(2, 60), res(5, 80)}}
	rst := &target{t: &tool{name: "restic"}, label: "restic", log: log, size: 100 << 20, verify: "ok",
		res: [numSteps]*measure.Result{res(30, 90), res(2, 50), res(4, 60), res(20, 70)}}
	d := &datasetResult{kind: dataset.Source, stats: dataset.Stats{Files: 1, Bytes: 1e9}, passBytes: 1e9, passTime: 5 * time.Second, local: []*target{cof, rst}}
	r := &report{datasets: []*datasetResult{d}}
	out := r.markdown()
	for _, want := range []string{
		"| Initial backup | 10.00 s (100 MB/s) | 30.00 s (33 MB/s) | not run | 3.00× | ≥ 2.5× faster | yes |",
		"| No-change re-backup | 1.00 s | 2.00 s | not run | 2.00× | ≥ 3.0× faster | **no** |",
		"| Repository size (du, after 3 backups) | 90.0 MiB | 100.0 MiB | not run | 0.90× | ≤ restic | yes |",
		"| Peak RSS, largest of all commands | 100 MiB | 90 MiB | not run | 1.11× | ≤ restic | **no** |",
		"= **50%** of the limit (target ≥ 60%: **no**)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if r.failed() {
		t.Error("a run with no failures and matching restores reported failure")
	}
	rst.verify = "MISMATCH: x"
	if !r.failed() {
		t.Error("a restore mismatch did not fail the run")
	}
}
