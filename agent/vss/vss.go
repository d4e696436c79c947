// Package vss reads a backup's files from Volume Shadow Copy snapshots on
// Windows, so a file another program holds open or keeps writing is read
// as it was at one instant, as MARS does.
//
// A Session snapshots each volume the backup reads, maps a live path to
// its copy in the snapshot, and removes every snapshot when closed. A
// snapshot left by a run that crashed or was killed is removed by the next
// Start: every snapshot is written to a journal file before it is used and
// taken off it once removed. Without elevation (VSS needs an
// administrator) Start warns once and the backup reads live files.
package vss

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Provider makes and removes snapshots: the Windows shadow copy service
// (provider_windows.go), or a fake in tests.
type Provider interface {
	// Create snapshots volume ("C:\") and returns the snapshot's ID and
	// the device its files are read through
	// (\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7).
	Create(volume string) (id, device string, err error)
	// Remove removes a snapshot by ID; removing one that is gone is not
	// an error.
	Remove(id string) error
}

// ErrNotElevated is returned by a provider when the process may not make
// snapshots.
var ErrNotElevated = errors.New("making a shadow copy needs an elevated (administrator) process")

// Options choose how a session starts.
type Options struct {
	Provider Provider
	Journal  string // file listing this machine's live snapshots; required
	Elevated bool   // whether the process runs elevated; if not, no snapshot is tried
	Log      *slog.Logger
}

// Session holds the snapshots of one backup.
type Session struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	snaps map[string]snapshot // volume (upper case, with trailing \) → snapshot
}

type snapshot struct {
	ID     string `json:"id"`
	Volume string `json:"volume"`
	Device string `json:"device"`
}

// Start removes the snapshots a previous run left in the journal, then
// snapshots the volume of each path. Without elevation, or when a volume
// cannot be snapshot, it warns once and that volume is read live: a backup
// of live files is still a backup. The error is only for a journal that
// cannot be read or written, since then a snapshot could be left behind.
func Start(paths []string, o Options) (*Session, error) {
	if o.Journal == "" {
		return nil, errors.New("vss: no journal file to record snapshots in")
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Session{opts: o, log: log, snaps: map[string]snapshot{}}
	if !o.Elevated {
		log.Warn("not running elevated: files are read live, without a shadow copy; a file another program holds locked may be skipped and one being written may be read mid-change. Run elevated, or pass --use-vss=false to silence this")
		return s, nil
	}
	if err := s.removeLeftovers(); err != nil {
		return nil, err
	}
	var volumes []string
	for _, p := range paths {
		if v := volumeOf(p); v != "" && !slices.Contains(volumes, v) {
			volumes = append(volumes, v)
		}
	}
	for _, v := range volumes {
		id, device, err := o.Provider.Create(v)
		if err != nil {
			log.Warn("no shadow copy of this volume: its files are read live", "volume", v, "err", err)
			continue
		}
		snap := snapshot{ID: id, Volume: v, Device: device}
		s.mu.Lock()
		s.snaps[v] = snap
		err = s.writeJournal()
		s.mu.Unlock()
		if err != nil {
			// It cannot be recorded, so it must not outlive this call.
			if rerr := o.Provider.Remove(id); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove shadow copy %s: %w", id, rerr))
			}
			return nil, err
		}
		log.Info("reading from a shadow copy", "volume", v, "snapshot", id)
	}
	return s, nil
}

// Map returns where to read path, an absolute path, from: its copy in the
// snapshot of its volume, or path itself when that volume has none.
func (s *Session) Map(path string) string {
	if s == nil {
		return path
	}
	v := volumeOf(path)
	s.mu.Lock()
	snap, ok := s.snaps[v]
	s.mu.Unlock()
	if !ok {
		return path
	}
	rest := strings.ReplaceAll(strings.TrimLeft(path[2:], `\/`), "/", `\`)
	return strings.TrimRight(snap.Device, `\`) + `\` + rest
}

// Snapshots returns how many volumes are read from a snapshot.
func (s *Session) Snapshots() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for v := range s.snaps {
		if !strings.HasPrefix(v, leftover) {
			n++
		}
	}
	return n
}

// Close removes every snapshot of the session. Call it however the
// backup ends; a snapshot it cannot remove stays in the journal for the
// next Start.
func (s *Session) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for v, snap := range s.snaps {
		if err := s.opts.Provider.Remove(snap.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove shadow copy %s of %s (the next backup retries): %w", snap.ID, v, err))
			continue
		}
		delete(s.snaps, v)
	}
	if len(s.snaps) == 0 && len(errs) == 0 {
		if err := os.Remove(s.opts.Journal); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if err := s.writeJournal(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// leftover prefixes the key of a snapshot a previous run left and this
// one could not remove: it stays in the journal but is never read from.
const leftover = ":left:"

// removeLeftovers removes the snapshots a killed or crashed run recorded.
func (s *Session) removeLeftovers() error {
	b, err := os.ReadFile(s.opts.Journal)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vss: read the snapshot journal %s: %w", s.opts.Journal, err)
	}
	var left []snapshot
	if err := json.Unmarshal(b, &left); err != nil {
		// Unreadable: it is only a list of IDs, and another backup's
		// snapshots are not ours to guess at. Say so and start afresh.
		s.log.Warn("the shadow copy journal is unreadable and is replaced; list shadow copies with 'vssadmin list shadows' and delete stale ones", "journal", s.opts.Journal, "err", err)
		return os.Remove(s.opts.Journal)
	}
	var kept []snapshot
	for _, snap := range left {
		if err := s.opts.Provider.Remove(snap.ID); err != nil {
			s.log.Warn("a shadow copy a previous backup left could not be removed; the next backup retries", "snapshot", snap.ID, "volume", snap.Volume, "err", err)
			kept = append(kept, snap)
			continue
		}
		s.log.Info("removed the shadow copy a previous backup left", "snapshot", snap.ID, "volume", snap.Volume)
	}
	for _, snap := range kept {
		s.snaps[leftover+snap.ID] = snap // kept in the journal, never mapped
	}
	return nil
}

// writeJournal records the live snapshots; s.mu is held. It writes a
// new file and renames it, so a crash leaves the old list or the new one.
func (s *Session) writeJournal() error {
	list := make([]snapshot, 0, len(s.snaps))
	for _, snap := range s.snaps {
		list = append(list, snap)
	}
	slices.SortFunc(list, func(a, b snapshot) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.opts.Journal), 0o700); err != nil {
		return fmt.Errorf("vss: create the folder of the snapshot journal: %w", err)
	}
	tmp := s.opts.Journal + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("vss: write the snapshot journal: %w", err)
	}
	if err := os.Rename(tmp, s.opts.Journal); err != nil {
		return fmt.Errorf("vss: write the snapshot journal: %w", err)
	}
	return nil
}

// volumeOf returns the volume root of an absolute Windows path ("C:\"),
// or "" for a path without a drive letter (UNC shares have no shadow
// copies of their own here). It parses the letter itself, so the session
// behaves the same in tests on any system.
func volumeOf(p string) string {
	if len(p) < 3 || p[1] != ':' || (p[2] != '\\' && p[2] != '/') {
		return ""
	}
	c := p[0] | 0x20
	if c < 'a' || c > 'z' {
		return ""
	}
	return strings.ToUpper(p[:2]) + `\`
}
