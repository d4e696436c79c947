package vss

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fake is a shadow copy service in memory: it records what exists, and
// can be made to fail.
type fake struct {
	mu        sync.Mutex
	next      int
	live      map[string]string // id → volume
	failOn    string            // volume whose Create fails
	removeErr error
}

func newFake() *fake { return &fake{live: map[string]string{}} }

func (f *fake) Create(volume string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if volume == f.failOn {
		return "", "", errors.New("the volume does not support shadow copies")
	}
	f.next++
	id := fmt.Sprintf("{snap-%d}", f.next)
	f.live[id] = volume
	return id, fmt.Sprintf(`\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy%d`, f.next), nil
}

func (f *fake) Remove(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removeErr != nil {
		return f.removeErr
	}
	delete(f.live, id)
	return nil
}

func (f *fake) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.live {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func logTo(b *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

func TestEachVolumeIsReadFromItsSnapshotAndEverySnapshotIsRemoved(t *testing.T) {
	f := newFake()
	journal := filepath.Join(t.TempDir(), "vss.json")
	var log bytes.Buffer
	s, err := Start([]string{`C:\Users\ann\Documents`, `c:\srv\share`, `D:\data`, `\\server\share\x`},
		Options{Provider: f, Journal: journal, Elevated: true, Log: logTo(&log)})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.ids(); len(got) != 2 || s.Snapshots() != 2 {
		t.Fatalf("snapshots %v (session counts %d); want one of C: and one of D:", got, s.Snapshots())
	}
	for path, want := range map[string]string{
		`C:\Users\ann\Documents\report.docx`: `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy1\Users\ann\Documents\report.docx`,
		`c:\srv\share\a.txt`:                 `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy1\srv\share\a.txt`,
		`D:\data\db.mdf`:                     `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy2\data\db.mdf`,
		`\\server\share\x\y`:                 `\\server\share\x\y`, // no drive letter: live
		`E:\not\snapshot`:                    `E:\not\snapshot`,
	} {
		if got := s.Map(path); got != want {
			t.Errorf("Map(%s) = %s, want %s", path, got, want)
		}
	}
	if b, err := os.ReadFile(journal); err != nil || !strings.Contains(string(b), "{snap-1}") || !strings.Contains(string(b), "{snap-2}") {
		t.Fatalf("the journal does not record both snapshots before they are used: %s, %v", b, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.ids(); len(got) != 0 {
		t.Fatalf("snapshots %v left after Close", got)
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the journal is left after every snapshot was removed: %v", err)
	}
}

// A run killed before Close leaves its snapshots in the journal; the next
// Start removes them before making its own.
func TestTheNextStartRemovesWhatAKilledRunLeft(t *testing.T) {
	f := newFake()
	journal := filepath.Join(t.TempDir(), "vss.json")
	var log bytes.Buffer
	o := Options{Provider: f, Journal: journal, Elevated: true, Log: logTo(&log)}
	if _, err := Start([]string{`C:\a`}, o); err != nil { // killed: no Close
		t.Fatal(err)
	}
	s, err := Start([]string{`C:\a`}, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.ids(); !slices.Equal(got, []string{"{snap-2}"}) {
		t.Fatalf("snapshots %v after the second start; want only its own", got)
	}
	if !strings.Contains(log.String(), "removed the shadow copy a previous backup left") {
		t.Errorf("the removal is not logged: %s", log.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.ids(); len(got) != 0 {
		t.Fatalf("snapshots %v left", got)
	}
}

// A snapshot that cannot be removed stays in the journal, for the next
// start to retry, and Close says so.
func TestASnapshotThatCannotBeRemovedIsRetriedNextTime(t *testing.T) {
	f := newFake()
	journal := filepath.Join(t.TempDir(), "vss.json")
	o := Options{Provider: f, Journal: journal, Elevated: true, Log: logTo(&bytes.Buffer{})}
	s, err := Start([]string{`C:\a`}, o)
	if err != nil {
		t.Fatal(err)
	}
	f.removeErr = errors.New("the shadow copy service is busy")
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "the next backup retries") {
		t.Fatalf("Close = %v; want the failure, saying the next backup retries", err)
	}
	f.removeErr = nil
	s2, err := Start([]string{`D:\b`}, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.ids(); !slices.Equal(got, []string{"{snap-2}"}) {
		t.Fatalf("snapshots %v; want the left one removed and D:'s made", got)
	}
	if s2.Map(`C:\a\x`) != `C:\a\x` {
		t.Error("a left snapshot is read from")
	}
	s2.Close()
}

func TestWithoutElevationFilesAreReadLiveWithOneWarning(t *testing.T) {
	f := newFake()
	var log bytes.Buffer
	s, err := Start([]string{`C:\a`, `D:\b`}, Options{Provider: f, Journal: filepath.Join(t.TempDir(), "j"), Log: logTo(&log)})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.ids()) != 0 || s.Map(`C:\a\x`) != `C:\a\x` {
		t.Fatal("a snapshot was made without elevation")
	}
	if n := strings.Count(log.String(), "level=WARN"); n != 1 || !strings.Contains(log.String(), "--use-vss=false") {
		t.Errorf("want one warning naming --use-vss=false, got %d: %s", n, log.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A volume that cannot be snapshot is read live; the others still are.
func TestAVolumeWithoutSnapshotIsReadLive(t *testing.T) {
	f := newFake()
	f.failOn = `D:\`
	var log bytes.Buffer
	s, err := Start([]string{`C:\a`, `D:\b`}, Options{Provider: f, Journal: filepath.Join(t.TempDir(), "j"), Elevated: true, Log: logTo(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Map(`D:\b\x`) != `D:\b\x` || s.Map(`C:\a\x`) == `C:\a\x` {
		t.Fatalf("D: should be live and C: from its snapshot: %s, %s", s.Map(`D:\b\x`), s.Map(`C:\a\x`))
	}
	if !strings.Contains(log.String(), "volume=D:") {
		t.Errorf("the live volume is not named: %s", log.String())
	}
}

// If the journal cannot be written the snapshot is removed at once: an
// unrecorded snapshot could outlive a crash.
func TestAnUnrecordableSnapshotIsRemovedAtOnce(t *testing.T) {
	f := newFake()
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	_, err := Start([]string{`C:\a`}, Options{Provider: f, Journal: filepath.Join(blocker, "vss.json"), Elevated: true, Log: logTo(&bytes.Buffer{})})
	if err == nil {
		t.Fatal("Start succeeded without a journal")
	}
	if got := f.ids(); len(got) != 0 {
		t.Fatalf("snapshots %v left although unrecorded", got)
	}
}

func TestANilSessionReadsLive(t *testing.T) {
	var s *Session
	if s.Map(`C:\x`) != `C:\x` || s.Close() != nil || s.Snapshots() != 0 {
		t.Fatal("a nil session must read live and close cleanly")
	}
}
