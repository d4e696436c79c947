package archiver_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/fsmeta"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

var pass = []byte("correct horse battery staple")

// fastKDF keeps tests quick; real repositories use crypto.DefaultKDFParams.
var fastKDF = &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// smallChunks make multi-chunk files and several packs out of small trees.
var smallChunks = &chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}

// newRepo is a new repository in memory.
func newRepo(t *testing.T) *repository.Repository {
	t.Helper()
	return newRepoOn(t, mem.New(t.Name()))
}

// newRepoOn is a new repository on be, with small chunks and packs.
func newRepoOn(t *testing.T, be storage.Backend) *repository.Repository {
	t.Helper()
	r, err := repository.Init(t.Context(), be, pass, repository.Options{KDF: fastKDF, Chunker: smallChunks, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// reopen opens the repository afresh, as the next backup would.
func reopen(t *testing.T, r *repository.Repository) *repository.Repository {
	t.Helper()
	return openOn(t, r.Backend())
}

func openOn(t *testing.T, be storage.Backend) *repository.Repository {
	t.Helper()
	r, err := repository.Open(t.Context(), be, pass, repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

func sourceTree(t *testing.T, seed uint64) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(src, treegen.Options{Seed: seed, Files: 40, MaxSize: 200 << 10, BigFiles: 1}); err != nil {
		t.Fatal(err)
	}
	return src
}

func objects(t *testing.T, be storage.Backend, prefix string) []string {
	t.Helper()
	var names []string
	if err := be.List(t.Context(), prefix, func(fi storage.Info) error { names = append(names, fi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// ancestorsUnchanged notes the times of the folders above dir; the func it
// returns reports whether none has changed since. A point's root tree holds
// them (it mirrors dir's absolute path), and on a busy machine other
// programs change shared folders such as /tmp at any moment, so a test that
// compares whole points tries again when one did.
func ancestorsUnchanged(t *testing.T, dir string) func() bool {
	t.Helper()
	times := func() []int64 {
		var out []int64
		for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
			m, err := fsmeta.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m.ModTime.UnixNano(), m.ChangeTime.UnixNano())
			if filepath.Dir(p) == p {
				return out
			}
		}
	}
	before := times()
	return func() bool { return slices.Equal(before, times()) }
}
