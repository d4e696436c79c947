package restorer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage/local"
)

var pass = []byte("correct horse battery staple")

// fastKDF keeps tests quick; real repositories use crypto.DefaultKDFParams.
var fastKDF = &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// smallChunks make multi-chunk files and several packs out of small trees.
var smallChunks = &chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}

func newRepo(t *testing.T) *repository.Repository {
	t.Helper()
	be, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(t.Context(), be, pass, repository.Options{KDF: fastKDF, Chunker: smallChunks, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func reopen(t *testing.T, r *repository.Repository) *repository.Repository {
	t.Helper()
	r2, err := repository.Open(t.Context(), r.Backend(), pass, repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r2
}

func TestRandomTreesRoundTripWithEveryFileKind(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			os.Mkdir(src, 0o755)
			if err := treegen.Make(src, treegen.Options{Seed: seed, Files: 60, MaxSize: 300 << 10, BigFiles: 1, Special: true}); err != nil {
				t.Fatal(err)
			}
			r := newRepo(t)
			res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Warnings) > 0 {
				t.Fatalf("warnings: %v", res.Warnings)
			}
			// A fresh process: everything comes from the repository.
			r2 := reopen(t, r)
			points, err := r2.Points(t.Context())
			if err != nil || len(points) != 1 || points[0].ID != res.Point.ID {
				t.Fatalf("points = %v, %v", points, err)
			}
			restoreExactly(t, r2, points[0], src, restorer.Options{Owner: true})
		})
	}
}

// restoreExactly restores point into a new folder and fails the test
// unless the restore reports nothing and src comes back exactly. It
// returns where src was restored.
func restoreExactly(t *testing.T, r *repository.Repository, point *repository.Point, src string, opts restorer.Options) string {
	t.Helper()
	opts.Target = t.TempDir()
	out, err := restorer.Restore(t.Context(), r, point, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Failed) > 0 || len(out.Warnings) > 0 {
		t.Fatalf("failed %v, warnings %v", out.Failed, out.Warnings)
	}
	restored := treegen.Restored(opts.Target, src)
	diffs, err := treegen.Diff(src, restored)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("restore differs:\n%s", strings.Join(diffs, "\n"))
	}
	return restored
}
