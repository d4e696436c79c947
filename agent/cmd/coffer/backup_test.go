package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/vault"
)

// printed runs printBackup on a command with captured output.
func printed(t *testing.T, res *archiver.Result, asJSON bool, job *vault.BackupResult) (stdout, stderr string, err error) {
	t.Helper()
	var out, errw bytes.Buffer
	c := &cobra.Command{}
	c.SetOut(&out)
	c.SetErr(&errw)
	err = printBackup(c, res, asJSON, job)
	return out.String(), errw.String(), err
}

func sampleResult(warnings ...archiver.Warning) *archiver.Result {
	return &archiver.Result{
		Point: &repository.Point{ID: "c0ffee", Time: time.Date(2026, 3, 1, 21, 0, 0, 0, time.UTC),
			Summary: repository.Summary{Files: 3, Dirs: 1, Bytes: 3 << 20, BytesRead: 2 << 20, BytesNew: 1 << 20, BytesStored: 512 << 10, Duration: 1500 * time.Millisecond}},
		Warnings: warnings,
	}
}

// A standalone backup and a vault job print the same summary and
// warnings; the job adds its ID, and the point's ID is stdout's only line.
func TestBackupPrintsOneSummaryStandaloneOrAsAJob(t *testing.T) {
	warn := archiver.Warning{Path: "/srv/locked.db", Err: "permission denied"}
	for _, tc := range []struct {
		name     string
		job      *vault.BackupResult
		warnings []archiver.Warning
		want     []string // in order, on stderr
		wantErr  error
	}{
		{"standalone", nil, nil,
			[]string{"Backup completed: 3 files, 1 folders, 3.0 MiB in all; read 2.0 MiB, new 1.0 MiB, stored 512.0 KiB, in 1.5s."}, nil},
		{"job with a warning", &vault.BackupResult{JobID: "job-7"}, []archiver.Warning{warn},
			[]string{"warning: /srv/locked.db: permission denied", "Backup completed with warnings: 3 files", "as job job-7."}, cli.ErrWarnings},
		{"job reported later", &vault.BackupResult{JobID: "job-8", Queued: true}, nil,
			[]string{"Backup completed: 3 files", "as job job-8.", "could not be reached"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := printed(t, sampleResult(tc.warnings...), false, tc.job)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if out != "c0ffee\n" {
				t.Fatalf("stdout %q, want the point ID alone", out)
			}
			rest := errOut
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stderr lacks %q (in order):\n%s", w, errOut)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// --json: the job's fields appear only for a vault job, reportQueued
// even when false, as scripts read it.
func TestBackupJSONNamesTheJobOnlyInAVault(t *testing.T) {
	out, _, err := printed(t, sampleResult(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var standalone map[string]any
	if err := json.Unmarshal([]byte(out), &standalone); err != nil {
		t.Fatal(err)
	}
	if _, ok := standalone["jobId"]; ok || standalone["status"] != "completed" || standalone["id"] != "c0ffee" {
		t.Fatalf("standalone JSON: %s", out)
	}
	if _, ok := standalone["reportQueued"]; ok {
		t.Fatalf("standalone JSON has reportQueued: %s", out)
	}
	out, _, err = printed(t, sampleResult(), true, &vault.BackupResult{JobID: "job-7"})
	if err != nil {
		t.Fatal(err)
	}
	var job map[string]any
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatal(err)
	}
	if job["jobId"] != "job-7" || job["reportQueued"] != false || job["files"] != float64(3) {
		t.Fatalf("job JSON: %s", out)
	}
}
