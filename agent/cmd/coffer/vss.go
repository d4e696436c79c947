package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/coffer-backup/coffer/agent/fsmeta"
	"github.com/coffer-backup/coffer/agent/vss"
)

// shadowCopies snapshots the volumes of paths on Windows when use is set
// (--use-vss, on by default) and returns the archiver's ReadFrom and the
// function that removes the snapshots, to call however the backup ends
// (Ctrl-C included: the context is cancelled and the backup returns). A
// run that is killed leaves them in the journal, and the next backup
// removes them first. Elsewhere, or with use unset, files are read live.
func shadowCopies(use bool, paths []string) (readFrom func(string) string, done func(), err error) {
	if !use || runtime.GOOS != "windows" {
		return nil, func() {}, nil
	}
	abs := make([]string, 0, len(paths))
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, nil, err
		}
		abs = append(abs, a)
	}
	s, err := vss.Start(abs, vss.Options{Provider: vss.System{}, Journal: vssJournal(), Elevated: fsmeta.IsRoot(), Log: slog.Default()})
	if err != nil {
		return nil, nil, fmt.Errorf("%w; or back up without shadow copies with --use-vss=false", err)
	}
	return s.Map, func() {
		if err := s.Close(); err != nil {
			slog.Warn("a shadow copy was not removed; the next backup removes it, or delete it with 'vssadmin delete shadows'", "err", err)
		}
	}, nil
}

// vssJournal is where this machine's live snapshots are listed: one
// place for every user and for the service, as snapshots are per machine.
func vssJournal() string {
	dir := os.Getenv("ProgramData")
	if dir == "" {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "coffer", "vss-snapshots.json")
}
