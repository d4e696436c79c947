//go:build unix

package torture

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/checker"
	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/faulty"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

const passphrase = "torture test passphrase, long enough"

// cheapKDF is the cheapest key derivation a reader accepts: the tests open
// repositories hundreds of times.
var cheapKDF = &crypto.KDFParams{Algorithm: crypto.AlgorithmArgon2id, Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// Every crash point of several successive backups: storage stops right
// after write n of a backup, for every n, as a kill -9 at that instant
// would leave it. Each time the repository checks clean with --read-data,
// lists no point without its pack list, and takes the next backup.
func TestBackupStoppedAfterEachWriteLeavesASoundRepository(t *testing.T) {
	t.Parallel()
	rng := rng(t)
	src := filepath.Join(t.TempDir(), "office")
	mutate(t, rng, src, 3<<20)

	// Small packs and frequent index files give a small backup many writes,
	// so many crash points.
	params := chunker.Params{Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20}
	base := mem.New("base")
	if _, err := repository.Init(t.Context(), base, []byte(passphrase), repository.Options{
		KDF:      &crypto.KDFParams{Algorithm: crypto.AlgorithmArgon2id, Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		PackSize: 1 << 20, Chunker: &params, Hostname: "torture"}); err != nil {
		t.Fatal(err)
	}
	generations := 3
	if testing.Short() {
		generations = 1
	}
	crashes := 0
	for g := range generations {
		if g > 0 {
			mutate(t, rng, src, 3<<20)
		}
		// A clean run on a copy counts the backup's writes.
		clean := faulty.New(clone(t, base))
		if _, err := backupArmed(t.Context(), open(t, clean), src, func() {}); err != nil {
			t.Fatalf("generation %d: clean backup: %v", g, err)
		}
		writes := clean.Writes()
		for n := range len(writes) {
			t.Run(fmt.Sprintf("backup %d stopped after write %d of %d", g+1, n, len(writes)), func(t *testing.T) {
				crashed := faulty.New(clone(t, base))
				_, err := backupArmed(t.Context(), open(t, crashed), src, func() { crashed.StopAfterWrites(n) })
				if err == nil {
					t.Fatal("the backup succeeded although storage stopped before its last write")
				}
				be := crashed.Unwrap() // what the crash left
				if got := sound(t, be); len(got) != g {
					t.Fatalf("%d points after the crash, want the %d made before", len(got), g)
				}
				if _, err := backupArmed(t.Context(), open(t, be), src, func() {}); err != nil {
					t.Fatalf("the backup after the crash: %v", err)
				}
				if got := sound(t, be); len(got) != g+1 {
					t.Fatalf("%d points after the next backup, want %d", len(got), g+1)
				}
			})
			crashes++
		}
		base = clean.Unwrap().(*mem.Backend)
	}
	t.Logf("%d crash points over %d backups", crashes, generations)
}

// clone copies a repository, so each crash starts from the same state.
func clone(t *testing.T, be storage.Backend) *mem.Backend {
	t.Helper()
	out := mem.New("copy")
	err := be.List(t.Context(), "", func(fi storage.Info) error {
		b, err := storage.ReadAll(t.Context(), be, fi.Name)
		if err != nil {
			return err
		}
		return out.Create(t.Context(), fi.Name, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func open(t *testing.T, be storage.Backend) *repository.Repository {
	t.Helper()
	r, err := repository.Open(t.Context(), be, []byte(passphrase), repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// backupArmed loads the index, calls arm, and backs up src: arm sets the
// fault once reading the repository is done.
func backupArmed(ctx context.Context, r *repository.Repository, src string, arm func()) (*archiver.Result, error) {
	if _, err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	arm()
	// One walker, one reader and one sealer keep the order in which blobs
	// reach the packs, so a backup's writes are the same from run to run
	// and the clean run's count of them holds for the crashed runs.
	return archiver.Backup(ctx, r, []string{src}, archiver.Options{Hostname: "torture", Workers: 1, Walkers: 1, Readers: 1, Uploads: 1, IndexEvery: 2})
}

// sound fails t unless the repository checks clean with --read-data and
// has no point without its pack reference list; it returns the points.
func sound(t *testing.T, be storage.Backend) []*repository.Point {
	t.Helper()
	r := open(t, be)
	ids, err := r.ListPoints(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids.Incomplete) > 0 {
		t.Errorf("points without their pack reference list: %v", ids.Incomplete)
	}
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
	return points
}
