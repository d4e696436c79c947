package restorer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/checker"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage"
)

func sourceTree(t *testing.T, seed uint64) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: seed, Files: 40, MaxSize: 200 << 10, BigFiles: 1}); err != nil {
		t.Fatal(err)
	}
	return src
}

func objects(t *testing.T, be storage.Backend) []string {
	t.Helper()
	var names []string
	be.List(t.Context(), "", func(fi storage.Info) error { names = append(names, fi.Name); return nil })
	slices.Sort(names)
	return names
}

func TestIncrementalBackupReadsAndStoresOnlyWhatChanged(t *testing.T) {
	src := sourceTree(t, 11)
	r := newRepo(t)
	first, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r = reopen(t, r)
	same, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Parent: first.Point})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is read. The point records its ancestors' metadata too (/tmp,
	// which other processes touch), so a few small trees may be new.
	if s := same.Point.Summary; s.BytesRead != 0 || s.BytesNew > 4<<10 {
		t.Fatalf("no-change backup read %d and stored %d new bytes; want 0 read and at most a few small trees", s.BytesRead, s.BytesNew)
	}

	// Change one file: only it is read, and only its changed chunk is new.
	big := filepath.Join(src, "big0.bin")
	f, _ := os.OpenFile(big, os.O_WRONLY, 0)
	f.WriteAt([]byte("a small edit in the middle"), 1<<20)
	f.Close()
	fi, _ := os.Stat(big)
	r = reopen(t, r)
	changed, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Parent: same.Point})
	if err != nil {
		t.Fatal(err)
	}
	s := changed.Point.Summary
	if s.BytesRead != fi.Size() {
		t.Errorf("read %d bytes, want just the changed file's %d", s.BytesRead, fi.Size())
	}
	if s.BytesNew == 0 || s.BytesNew > 600<<10 {
		t.Errorf("new data %d bytes, want only the chunks around the edit (under 600 KiB of a %d-byte file)", s.BytesNew, fi.Size())
	}
}

func TestWrongPassphraseIsRefusedAndWritesNothing(t *testing.T) {
	r := newRepo(t)
	before := objects(t, r.Backend())
	_, err := repository.Open(t.Context(), r.Backend(), []byte("this is not the passphrase"), repository.Options{})
	if !errors.Is(err, repository.ErrWrongPassphrase) {
		t.Fatalf("open with a wrong passphrase: %v", err)
	}
	if after := objects(t, r.Backend()); !slices.Equal(before, after) {
		t.Fatalf("objects changed: %v -> %v", before, after)
	}
	if _, err := repository.Init(t.Context(), r.Backend(), pass, repository.Options{KDF: fastKDF}); !errors.Is(err, repository.ErrAlreadyExists) {
		t.Fatalf("init over a repository: %v", err)
	}
	if _, err := repository.Init(t.Context(), r.Backend(), []byte("short"), repository.Options{}); err == nil || !strings.Contains(err.Error(), "16") {
		t.Fatalf("short passphrase: %v", err)
	}
}

func TestPassphraseChangeRewrapsTheKeyOnly(t *testing.T) {
	src := sourceTree(t, 12)
	r := newRepo(t)
	if _, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{}); err != nil {
		t.Fatal(err)
	}
	before := objects(t, r.Backend())
	newPass := []byte("a brand new passphrase, long enough")
	if err := r.ChangePassphrase(t.Context(), newPass, repository.Options{KDF: fastKDF}); err != nil {
		t.Fatal(err)
	}
	after := objects(t, r.Backend())
	var changed []string
	for _, n := range append(slices.Clone(before), after...) {
		if !slices.Contains(before, n) || !slices.Contains(after, n) {
			changed = append(changed, n)
		}
	}
	if len(changed) != 2 || !strings.HasPrefix(changed[0], "keys/") || !strings.HasPrefix(changed[1], "keys/") {
		t.Fatalf("a passphrase change touched %v; want one key file replaced and nothing else", changed)
	}
	if _, err := repository.Open(t.Context(), r.Backend(), pass, repository.Options{}); !errors.Is(err, repository.ErrWrongPassphrase) {
		t.Fatalf("old passphrase still opens: %v", err)
	}
	if _, err := repository.Open(t.Context(), r.Backend(), newPass, repository.Options{}); err != nil {
		t.Fatalf("new passphrase: %v", err)
	}
}

// damage flips one byte in the middle of the first data pack found, by
// rewriting it in place (only possible on a local repository).
func damage(t *testing.T, r *repository.Repository, repoDir string, truncate bool) string {
	t.Helper()
	var victim string
	r.Backend().List(t.Context(), "data/", func(fi storage.Info) error {
		if victim == "" && fi.Size > 200<<10 {
			victim = fi.Name
		}
		return nil
	})
	p := filepath.Join(repoDir, filepath.FromSlash(victim))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if truncate {
		b = b[:len(b)/3]
		// Keep the header readable is impossible after truncation; the index still knows the blobs.
	} else {
		b[len(b)/4] ^= 0x40
	}
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return victim
}

func TestDamagedPackFailsOnlyTheFilesThatNeedIt(t *testing.T) {
	for _, truncate := range []bool{false, true} {
		name := map[bool]string{false: "bit flip", true: "truncation"}[truncate]
		t.Run(name, func(t *testing.T) {
			src := sourceTree(t, 13)
			r := newRepo(t)
			res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
			if err != nil {
				t.Fatal(err)
			}
			victim := damage(t, r, r.Backend().Location(), truncate)
			r = reopen(t, r)

			dst := t.TempDir()
			out, err := restorer.Restore(t.Context(), r, res.Point, restorer.Options{Target: dst})
			if err != nil {
				t.Fatalf("restore stopped instead of restoring what it could: %v", err)
			}
			if len(out.Failed) == 0 {
				t.Fatal("a damaged pack went unnoticed")
			}
			for _, f := range out.Failed {
				if _, err := os.Lstat(f.Path); err == nil {
					t.Errorf("%s failed but was left on disk", f.Path)
				}
			}
			if out.Files == 0 {
				t.Fatal("nothing was restored")
			}
			// Every file reported good is byte-identical.
			diffs, _ := treegen.Diff(src, filepath.Join(dst, src))
			for _, d := range diffs {
				if !strings.Contains(d, "missing in restore") {
					t.Errorf("restored file differs: %s", d)
				}
			}
			if len(diffs) != len(out.Failed) {
				t.Errorf("%d files missing, %d reported failed", len(diffs), len(out.Failed))
			}

			rep, err := checker.Check(t.Context(), r, checker.Options{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, p := range rep.Problems {
				if strings.HasPrefix(p.Object, victim) && len(p.Points) == 1 && p.Points[0] == res.Point.ID && len(p.Files) > 0 {
					found = true
				}
			}
			if !found {
				t.Fatalf("check --read-data did not name %s with its point and files: %+v", victim, rep.Problems)
			}
		})
	}
}

func TestCheckOfAHealthyRepositoryFindsNothing(t *testing.T) {
	src := sourceTree(t, 14)
	r := newRepo(t)
	if _, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{}); err != nil {
		t.Fatal(err)
	}
	rep, err := checker.Check(t.Context(), reopen(t, r), checker.Options{ReadData: true})
	if err != nil || len(rep.Problems) > 0 || rep.Points != 1 || rep.BytesRead == 0 {
		t.Fatalf("check: %+v, %v", rep, err)
	}
}

func TestInterruptedBackupLeavesAValidRepositoryAndItsUploadsAreReused(t *testing.T) {
	src := sourceTree(t, 15)
	r := newRepo(t)
	first, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	more := filepath.Join(src, "more")
	os.Mkdir(more, 0o755)
	if err := treegen.Make(more, treegen.Options{Seed: 99, Files: 30, MaxSize: 100 << 10, BigFiles: 3}); err != nil {
		t.Fatal(err)
	}
	// Cancel once some packs are stored, as a crash would stop it.
	ctx, cancel := context.WithCancel(t.Context())
	prog := &archiver.Progress{}
	go func() {
		for prog.BytesStored.Load() < 2<<20 {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(time.Millisecond) // polling a counter, not waiting on time
		}
		cancel()
	}()
	// A process killed with -9 writes no index at the end: refuse index
	// writes, so only the packs themselves survive.
	crashing, err := repository.Open(t.Context(), noIndex{r.Backend()}, pass, repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	crashing.LoadIndex(t.Context())
	if _, err := archiver.Backup(ctx, crashing, []string{src}, archiver.Options{Parent: first.Point, Progress: prog, IndexEvery: 1000}); err == nil {
		t.Skip("the backup finished before it could be interrupted")
	}
	cancel()

	// The first point is intact and the repository checks clean.
	r = reopen(t, r)
	rep, err := checker.Check(t.Context(), r, checker.Options{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check after interruption: %+v, %v", rep.Problems, err)
	}
	// The next backup finds the interrupted one's packs and does not store them again.
	r2, _ := repository.Open(t.Context(), r.Backend(), pass, repository.Options{})
	st, err := r2.LoadIndex(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Recovered == 0 {
		t.Fatal("no pack of the interrupted backup was recovered")
	}
	second, err := archiver.Backup(t.Context(), r2, []string{src}, archiver.Options{Parent: first.Point})
	if err != nil {
		t.Fatal(err)
	}
	if second.Point.Summary.BytesNew >= second.Point.Summary.BytesRead {
		t.Fatalf("after the interruption the backup stored %d new of %d read bytes: nothing was reused", second.Point.Summary.BytesNew, second.Point.Summary.BytesRead)
	}
	dst := t.TempDir()
	out, err := restorer.Restore(t.Context(), reopen(t, r2), second.Point, restorer.Options{Target: dst})
	if err != nil || len(out.Failed) > 0 {
		t.Fatalf("restore: %v %v", out, err)
	}
	if diffs, _ := treegen.Diff(src, filepath.Join(dst, src)); len(diffs) > 0 {
		t.Fatalf("restore differs: %v", diffs)
	}
}

// noIndex is a backend on which index files cannot be written.
type noIndex struct{ storage.Backend }

func (b noIndex) Create(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "index/") {
		return errors.New("simulated crash before the index was written")
	}
	return b.Backend.Create(ctx, name, data)
}
