package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func execute(args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestVersionPrintsAVersion(t *testing.T) {
	out, err := execute("version")
	if err != nil || !strings.HasPrefix(out, "coffer ") || len(strings.TrimSpace(out)) <= len("coffer") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

func TestBadFlagIsAUsageError(t *testing.T) {
	_, err := execute("version", "--no-such-flag")
	if err == nil || cli.ExitCode(err) != cli.ExitUsage {
		t.Fatalf("bad flag: err=%v exit=%d, want exit %d", err, cli.ExitCode(err), cli.ExitUsage)
	}
}
