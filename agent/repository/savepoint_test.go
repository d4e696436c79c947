package repository_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/checker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/faulty"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

const passphrase = "a test passphrase, long enough"

// cheapKDF keeps key derivation to milliseconds: these tests open
// repositories dozens of times.
var cheapKDF = &crypto.KDFParams{Algorithm: crypto.AlgorithmArgon2id, Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// sources are two folders: the first point backs up one, the second both.
func sources(t *testing.T) (first, both []string) {
	t.Helper()
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for i, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := treegen.Make(d, treegen.Options{Seed: uint64(i + 1), Files: 6, MaxSize: 8 << 10}); err != nil {
			t.Fatal(err)
		}
	}
	return []string{a}, []string{a, b}
}

// repoWithOnePoint is an in-memory repository behind a fault-injecting
// wrapper, holding one complete point of paths.
func repoWithOnePoint(t *testing.T, paths []string) *faulty.Backend {
	t.Helper()
	fb := faulty.New(mem.New(t.Name()))
	r, err := repository.Init(t.Context(), fb, []byte(passphrase), repository.Options{KDF: cheapKDF, Hostname: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup(t.Context(), r, paths); err != nil {
		t.Fatalf("first backup: %v", err)
	}
	return fb
}

func open(t *testing.T, be storage.Backend) *repository.Repository {
	t.Helper()
	r, err := repository.Open(t.Context(), be, []byte(passphrase), repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func backup(ctx context.Context, r *repository.Repository, paths []string) (*archiver.Result, error) {
	return backupArmed(ctx, r, paths, func() {})
}

// backupArmed calls arm once the index is loaded, just before the backup
// starts writing.
func backupArmed(ctx context.Context, r *repository.Repository, paths []string, arm func()) (*archiver.Result, error) {
	if _, err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	arm()
	return archiver.Backup(ctx, r, paths, archiver.Options{Hostname: "test", Workers: 1, Uploads: 1})
}

// sound fails t unless every point the repository lists has its pack
// reference list and `check --read-data` finds nothing wrong. It returns
// the points listed.
func sound(t *testing.T, be storage.Backend) []*repository.Point {
	t.Helper()
	r := open(t, be)
	points, err := r.Points(t.Context())
	if err != nil {
		t.Fatalf("list points: %v", err)
	}
	for _, p := range points {
		if _, err := be.Stat(t.Context(), layout.Refs(p.ID)); err != nil {
			t.Errorf("point %s is listed without its pack reference list: %v", p.ID, err)
		}
	}
	rep, err := checker.Check(t.Context(), r, checker.Options{ReadData: true, Workers: 2})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, p := range rep.Problems {
		t.Errorf("check --read-data: %s: %s (points %v)", p.Object, p.Err, p.Points)
	}
	if rep.Points != len(points) {
		t.Errorf("check saw %d points, the listing %d", rep.Points, len(points))
	}
	return points
}

// Bug 3: a backup killed between writing its point and the point's pack
// reference list left a point `check` called damaged, whose packs the
// control plane would not keep. A crash right after any write of a backup,
// SavePoint's included, now leaves a repository that checks clean, lists
// the new point only if it is whole, and takes the next backup.
func TestBackupStoppedAfterAnyWriteLeavesNoPointWithoutItsRefs(t *testing.T) {
	first, both := sources(t)

	// A clean run counts the second backup's writes; SavePoint's are the
	// last two, the list first.
	fb := repoWithOnePoint(t, first)
	before := len(fb.Writes())
	res, err := backup(t.Context(), open(t, fb), both)
	if err != nil {
		t.Fatal(err)
	}
	writes := fb.Writes()[before:]
	id := res.Point.ID
	if n := len(writes); n < 3 || writes[n-2].Name != layout.Refs(id) || writes[n-1].Name != layout.Point(id) {
		t.Errorf("the backup's writes end %v, want %s then %s", writes, layout.Refs(id), layout.Point(id))
	}

	for n := 0; n <= len(writes); n++ {
		t.Run(fmt.Sprintf("stop after write %d of %d", n, len(writes)), func(t *testing.T) {
			fb := repoWithOnePoint(t, first)
			_, err := backupArmed(t.Context(), open(t, fb), both, func() { fb.StopAfterWrites(n) })
			if n < len(writes) && err == nil {
				t.Fatal("the backup succeeded although storage stopped before its last write")
			}
			be := fb.Unwrap() // what the crash left
			points := sound(t, be)
			want := 1
			if n == len(writes) {
				want = 2
			}
			if len(points) != want {
				t.Fatalf("%d points listed, want %d", len(points), want)
			}
			// The next backup completes and the repository stays sound.
			if _, err := backup(t.Context(), open(t, be), both); err != nil {
				t.Fatalf("the backup after the crash: %v", err)
			}
			if got := sound(t, be); len(got) != want+1 {
				t.Fatalf("%d points after the next backup, want %d", len(got), want+1)
			}
		})
	}
}

// A point without its pack reference list (written by an older Coffer that
// was killed between the two) is incomplete: not listed, so never restored,
// used as a parent or checked; a list without its point is an orphan. Both
// are reported by ListPoints, and the repository checks clean.
func TestPointsWithoutBothObjectsAreNotListed(t *testing.T) {
	first, both := sources(t)
	fb := repoWithOnePoint(t, first)
	be := fb.Unwrap()
	r := open(t, be)
	res, err := backup(t.Context(), r, both)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := backup(t.Context(), r, first)
	if err != nil {
		t.Fatal(err)
	}
	kept := sound(t, be)[0].ID
	noRefs, noPoint := res.Point.ID, res2.Point.ID
	for _, name := range []string{layout.Refs(noRefs), layout.Point(noPoint)} {
		if err := be.Delete(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	got, err := open(t, be).ListPoints(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Complete, []string{kept}) || !slices.Equal(got.Incomplete, []string{noRefs}) || !slices.Equal(got.Orphans, []string{noPoint}) {
		t.Fatalf("ListPoints = %+v, want complete %s, incomplete %s, orphan %s", got, kept, noRefs, noPoint)
	}
	points := sound(t, be)
	if len(points) != 1 || points[0].ID != kept {
		t.Fatalf("points listed: %v, want only %s", points, kept)
	}
	if _, err := repository.FindPoint(points, noRefs[:8]); err == nil {
		t.Fatal("the incomplete point can be chosen for a restore")
	}
}
