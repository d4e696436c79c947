//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

// TestExitCodesAreConsistent runs coffer as a script would and checks each
// documented exit code, with a message saying what to do.
func TestExitCodesAreConsistent(t *testing.T) {
	repo, src, cache := setup(t)
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("backup: %+v", r)
	}
	missing := filepath.Join(t.TempDir(), "never-created")
	rel := strings.TrimPrefix(src, "/")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		says string
	}{
		{"version flag", nil, []string{"--version"}, cli.ExitOK, "coffer "},
		{"unknown command", nil, []string{"bakup"}, cli.ExitUsage, "did you mean backup"},
		{"unknown subcommand", nil, []string{"passphrase", "chnage"}, cli.ExitUsage, `unknown command "chnage"`},
		{"unknown flag", nil, []string{"points", "--no-such-flag"}, cli.ExitUsage, "unknown flag"},
		{"point that does not exist", nil, []string{"ls", "--repo", repo, "ffffffff"}, cli.ExitFailed, "no recovery point"},
		{"point too short", nil, []string{"ls", "--repo", repo, "ff"}, cli.ExitUsage, "too short"},
		{"ls of a path not in the point", nil, []string{"ls", "--repo", repo, "latest", rel + "/nothing-here"}, cli.ExitFailed, "not in the point"},
		{"restore --include of nothing", nil, []string{"restore", "--repo", repo, "latest", "--target", t.TempDir(), "--include", rel + "/nothing-here"}, cli.ExitFailed, "not in the point"},
		{"no repository there", nil, []string{"points", "--repo", missing}, cli.ExitNoRepository, "coffer init"},
		{"wrong passphrase", []string{"COFFER_PASSPHRASE=not the passphrase of this one"}, []string{"points", "--repo", repo}, cli.ExitWrongPassphrase, "wrong passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := coffer(t, tc.env, tc.args...)
			if r.code != tc.code || !strings.Contains(r.out+r.err, tc.says) {
				t.Fatalf("coffer %v: exit %d, out %q, err %q; want exit %d saying %q", tc.args, r.code, r.out, r.err, tc.code, tc.says)
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a read-only command created the repository's folder")
	}
}
