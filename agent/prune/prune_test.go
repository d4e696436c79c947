package prune

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/checker"
	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/faulty"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

var pass = []byte("correct horse battery staple")

var fastKDF = &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// Small chunks and packs make many packs, most of them shared by the
// points, out of small trees.
var smallChunks = &chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}

// fixture is a repository with three points: old backs up folders a and
// b, mid backs up a alone and new backs up c. Forgetting old leaves b's
// blobs unused, mixed in packs with a's.
type fixture struct {
	be            storage.Backend
	a, b, c       string
	old, mid, new *repository.Point
}

func newFixture(t *testing.T, be storage.Backend) *fixture {
	t.Helper()
	f := &fixture{be: be}
	root := t.TempDir()
	for i, d := range []*string{&f.a, &f.b, &f.c} {
		*d = filepath.Join(root, string(rune('a'+i)))
		if err := os.Mkdir(*d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := treegen.Make(*d, treegen.Options{Seed: uint64(i + 1), Files: 30, MaxSize: 200 << 10, BigFiles: 1, Special: true}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := repository.Init(t.Context(), be, pass, repository.Options{KDF: fastKDF, Chunker: smallChunks, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	backup := func(paths ...string) *repository.Point {
		res, err := archiver.Backup(t.Context(), r, paths, archiver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warnings) > 0 {
			t.Fatalf("warnings: %v", res.Warnings)
		}
		return res.Point
	}
	f.old = backup(f.a, f.b)
	f.mid = backup(f.a)
	f.new = backup(f.c)
	return f
}

func open(t *testing.T, be storage.Backend) *repository.Repository {
	t.Helper()
	r, err := repository.Open(t.Context(), be, pass, repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sound checks the repository with --read-data, and that each point
// restores equal to its source folders.
func sound(t *testing.T, be storage.Backend, want map[string][]string) {
	t.Helper()
	r := open(t, be)
	rep, err := checker.Check(t.Context(), r, checker.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("check found problems: %+v", rep.Problems)
	}
	points, err := r.Points(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != len(want) {
		t.Fatalf("%d points, want %d", len(points), len(want))
	}
	for _, p := range points {
		srcs, ok := want[p.ID]
		if !ok {
			t.Fatalf("unexpected point %s", p.ID)
		}
		dst := t.TempDir()
		out, err := restorer.Restore(t.Context(), r, p, restorer.Options{Target: dst, Owner: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Failed) > 0 || len(out.Warnings) > 0 {
			t.Fatalf("restore of %s: failed %v, warnings %v", p.ID, out.Failed, out.Warnings)
		}
		for _, src := range srcs {
			diffs, err := treegen.Diff(src, treegen.Restored(dst, src))
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Fatalf("point %s restores %s differently:\n%s", p.ID, src, strings.Join(diffs, "\n"))
			}
		}
	}
}

func count(t *testing.T, be storage.Backend, prefix string) int {
	t.Helper()
	n := 0
	if err := be.List(t.Context(), prefix, func(storage.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPruneFreesWhatForgottenPointsUsed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxUnused float64
		repack    bool // some pack must be repacked
	}{
		{"repack everything partly used", 0, true},
		{"default 5 percent", 0.05, false},
		{"never repack", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := mem.New(t.Name())
			f := newFixture(t, be)
			want := map[string][]string{f.mid.ID: {f.a}, f.new.ID: {f.c}}
			r := open(t, be)

			// Nothing forgotten: nothing to do.
			st, err := Prune(t.Context(), r, Options{MaxUnused: tc.maxUnused})
			if err != nil {
				t.Fatal(err)
			}
			if st.PacksDeleted+st.PacksRepacked != 0 || st.BlobsUnused != 0 {
				t.Fatalf("prune with every blob in use: %+v", st)
			}

			if err := r.DeletePoint(t.Context(), f.old.ID); err != nil {
				t.Fatal(err)
			}
			packsBefore := count(t, be, layout.DataPrefix)
			dry, err := Prune(t.Context(), open(t, be), Options{MaxUnused: tc.maxUnused, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if n := count(t, be, layout.DataPrefix); n != packsBefore {
				t.Fatalf("dry run changed the packs: %d, was %d", n, packsBefore)
			}
			st, err = Prune(t.Context(), open(t, be), Options{MaxUnused: tc.maxUnused})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", st)
			if st.PacksDeleted != dry.PacksDeleted || st.PacksRepacked != dry.PacksRepacked || st.BytesFreed != dry.BytesFreed {
				t.Errorf("dry run planned %+v, prune did %+v", dry, st)
			}
			if st.BlobsUnused == 0 || tc.maxUnused >= 0 && st.BytesFreed == 0 {
				t.Errorf("nothing freed after forgetting a point: %+v", st)
			}
			if tc.repack && (st.PacksRepacked == 0 || st.ListsRewritten == 0 || st.UnusedAfter != 0) {
				t.Errorf("max-unused 0 left unused space or repacked nothing: %+v", st)
			}
			if tc.repack {
				groupsHoldOnlyTheirMembers(t, open(t, be))
			}
			if tc.maxUnused < 0 && st.PacksRepacked != 0 {
				t.Errorf("repacked with no limit: %+v", st)
			}
			if limit := int64(tc.maxUnused * float64(st.BytesUsed)); tc.maxUnused >= 0 && st.UnusedAfter > limit {
				t.Errorf("unused after %d, above the limit %d", st.UnusedAfter, limit)
			}
			if n := count(t, be, layout.DataPrefix); n != packsBefore-st.PacksDeleted-st.PacksRepacked+st.PacksWritten {
				t.Errorf("%d packs stored, want %d - %d - %d + %d", n, packsBefore, st.PacksDeleted, st.PacksRepacked, st.PacksWritten)
			}
			if count(t, be, repository.PruneLock) != 0 {
				t.Error("prune left its lock")
			}
			sound(t, be, want)

			// Done: a second prune finds nothing more to free.
			again, err := Prune(t.Context(), open(t, be), Options{MaxUnused: tc.maxUnused})
			if err != nil {
				t.Fatal(err)
			}
			if again.PacksDeleted+again.PacksRepacked != 0 {
				t.Errorf("second prune still had work: %+v", again)
			}
		})
	}
}

// groupsHoldOnlyTheirMembers checks that the repository has groups and
// that every byte of each is an indexed member's: a repack groups the
// members in use anew rather than copying a group with its unused ones.
func groupsHoldOnlyTheirMembers(t *testing.T, r *repository.Repository) {
	t.Helper()
	if _, err := r.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	groups := 0
	for id, p := range r.Index().Packs() {
		held := map[uint32]int64{}
		for _, e := range p.Blobs {
			if e.Grouped() {
				held[e.Offset] += int64(e.RawLength)
			}
		}
		for _, e := range p.Blobs {
			if e.Grouped() && held[e.Offset] != int64(e.GroupLength) {
				t.Fatalf("pack %s: the group at %d holds %d bytes, its members %d", id, e.Offset, e.GroupLength, held[e.Offset])
			}
		}
		groups += len(held)
	}
	if groups == 0 {
		t.Fatal("no groups: the fixture's small files were sealed one by one")
	}
}

// TestPruneStoppedAtEveryWrite stops the storage after each write a prune
// makes in turn, as a kill would, and checks the repository each time,
// then lets a prune finish.
func TestPruneStoppedAtEveryWrite(t *testing.T) {
	src := newFixtureAfterForget(t)
	// Count the writes of one whole prune first.
	fb := faulty.New(restoreSnapshot(t, src.objects))
	if _, err := Prune(t.Context(), open(t, fb), Options{MaxUnused: 0}); err != nil {
		t.Fatal(err)
	}
	writes := len(fb.Writes())
	if writes < 10 {
		t.Fatalf("a prune made only %d writes", writes)
	}
	step := max(1, writes/12)
	for n := 0; n < writes; n += step {
		be := restoreSnapshot(t, src.objects)
		fb := faulty.New(be)
		r := open(t, fb)
		fb.StopAfterWrites(n)
		_, err := Prune(t.Context(), r, Options{MaxUnused: 0}) // fails at write n+1
		t.Logf("stopped after write %d of %d: %v", n, writes, err)
		sound(t, be, src.want)
		// The lock stays, as a kill leaves it. Its holder (this process)
		// is alive, so the next prune refuses; a killed one's is taken
		// over (emulator-tests/torture).
		if count(t, be, repository.PruneLock) > 0 {
			if _, err := Prune(t.Context(), open(t, be), Options{MaxUnused: 0}); !errors.Is(err, repository.ErrPruneRunning) {
				t.Fatalf("prune beside a live holder's lock: %v, want ErrPruneRunning", err)
			}
			if err := be.Delete(t.Context(), repository.PruneLock); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Prune(t.Context(), open(t, be), Options{MaxUnused: 0}); err != nil {
			t.Fatalf("prune after a stop at write %d: %v", n, err)
		}
		t.Logf("pruned again")
		sound(t, be, src.want)
	}
}

type snap struct {
	objects map[string][]byte
	want    map[string][]string
}

// newFixtureAfterForget is the fixture with its old point forgotten, as
// a snapshot each test run copies.
func newFixtureAfterForget(t *testing.T) snap {
	be := mem.New("fixture")
	f := newFixture(t, be)
	if err := open(t, be).DeletePoint(t.Context(), f.old.ID); err != nil {
		t.Fatal(err)
	}
	return snapshot(t, be, map[string][]string{f.mid.ID: {f.a}, f.new.ID: {f.c}})
}

func snapshot(t *testing.T, be *mem.Backend, want map[string][]string) snap {
	s := snap{objects: map[string][]byte{}, want: want}
	be.List(t.Context(), "", func(fi storage.Info) error {
		b, err := storage.ReadAll(t.Context(), be, fi.Name)
		if err != nil {
			t.Fatal(err)
		}
		s.objects[fi.Name] = b
		return nil
	})
	return s
}

func restoreSnapshot(t *testing.T, objs map[string][]byte) *mem.Backend {
	be := mem.New("copy")
	for n, b := range objs {
		if err := be.Create(t.Context(), n, b); err != nil {
			t.Fatal(err)
		}
	}
	return be
}
