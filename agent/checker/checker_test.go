package checker_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/checker"
	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

var pass = []byte("correct horse battery staple")

// fastKDF keeps tests quick; real repositories use crypto.DefaultKDFParams.
var fastKDF = &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// smallChunks make multi-chunk files and several packs out of small trees.
var smallChunks = &chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}

// backedUp is a repository in memory holding one backup of a generated
// tree: the repository, reopened as a check would find it, and the point.
func backedUp(t *testing.T, seed uint64) (*repository.Repository, *repository.Point) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(src, treegen.Options{Seed: seed, Files: 40, MaxSize: 200 << 10, BigFiles: 1}); err != nil {
		t.Fatal(err)
	}
	be := mem.New(t.Name())
	r, err := repository.Init(t.Context(), be, pass, repository.Options{KDF: fastKDF, Chunker: smallChunks, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return reopen(t, be), res.Point
}

func reopen(t *testing.T, be storage.Backend) *repository.Repository {
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

// bigPack is the name of the first data pack over 200 KiB.
func bigPack(t *testing.T, be storage.Backend) string {
	t.Helper()
	var victim string
	be.List(t.Context(), layout.DataPrefix, func(fi storage.Info) error {
		if victim == "" && fi.Size > 200<<10 {
			victim = fi.Name
		}
		return nil
	})
	if victim == "" {
		t.Fatal("no data pack over 200 KiB")
	}
	return victim
}

// replace swaps an object's content behind the repository's back, as
// storage that corrupts data would.
func replace(t *testing.T, be storage.Backend, name string, change func([]byte) []byte) {
	t.Helper()
	b, err := storage.ReadAll(t.Context(), be, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Delete(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	if err := be.Create(t.Context(), name, change(b)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckOfAHealthyRepositoryFindsNothing(t *testing.T) {
	r, _ := backedUp(t, 14)
	rep, err := checker.Check(t.Context(), r, checker.Options{ReadData: true})
	if err != nil || len(rep.Problems) > 0 || rep.Points != 1 || rep.BytesRead == 0 {
		t.Fatalf("check: %+v, %v", rep, err)
	}
}

// check --read-data names a damaged pack with the point and the files it
// hurts, whether its bytes changed or it lost its end.
func TestReadDataNamesADamagedPackWithItsPointAndFiles(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func([]byte) []byte
	}{
		{"bit flip", func(b []byte) []byte { b[len(b)/4] ^= 0x40; return b }},
		{"truncation", func(b []byte) []byte { return b[:len(b)/3] }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, point := backedUp(t, 13)
			victim := bigPack(t, r.Backend())
			replace(t, r.Backend(), victim, c.change)
			r = reopen(t, r.Backend())

			rep, err := checker.Check(t.Context(), r, checker.Options{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, p := range rep.Problems {
				if strings.HasPrefix(p.Object, victim) && len(p.Points) == 1 && p.Points[0] == point.ID && len(p.Files) > 0 {
					found = true
				}
			}
			if !found {
				t.Fatalf("check --read-data did not name %s with its point and files: %+v", victim, rep.Problems)
			}
		})
	}
}

// Without reading data, a pack that is gone is found from the listing, and
// each blob the point needed from it is named with the point and files.
func TestMissingPackIsFoundWithoutReadingData(t *testing.T) {
	r, point := backedUp(t, 15)
	victim := bigPack(t, r.Backend())
	if err := r.Backend().Delete(t.Context(), victim); err != nil {
		t.Fatal(err)
	}
	rep, err := checker.Check(t.Context(), reopen(t, r.Backend()), checker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BytesRead != 0 {
		t.Fatalf("a structural check read %d bytes of data", rep.BytesRead)
	}
	if len(rep.Problems) == 0 {
		t.Fatalf("a deleted pack %s went unnoticed", victim)
	}
	for _, p := range rep.Problems {
		if !strings.HasPrefix(p.Object, "blob ") || !strings.Contains(p.Err, "missing") ||
			!slices.Equal(p.Points, []string{point.ID}) || len(p.Files) == 0 {
			t.Errorf("problem %+v; want a missing blob naming point %s and its files", p, point.ID)
		}
	}
}
