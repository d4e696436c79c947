// Package storagetest is the conformance suite every storage.Backend passes,
// so that the engine above it can rely on one behaviour whether the
// repository is a folder or a container.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Options adapt the suite to what a backend's credentials allow.
type Options struct {
	// NoDelete: the credentials do not allow Delete (a create, read and list
	// SAS). The delete cases are skipped and Delete must fail with
	// storage.ErrPermission instead.
	NoDelete bool
	// LargeSize is the size of the large-object case; 0 means 20 MiB.
	LargeSize int
}

// Run runs every case, Delete included, each against a fresh, empty backend
// from open.
func Run(t *testing.T, open func(t *testing.T) storage.Backend) {
	RunWith(t, open, Options{})
}

// RunWith runs the suite adapted by o.
func RunWith(t *testing.T, open func(t *testing.T) storage.Backend, o Options) {
	if o.LargeSize == 0 {
		o.LargeSize = 20 << 20
	}
	cases := []struct {
		name string
		fn   func(*testing.T, storage.Backend, Options)
	}{
		{"CreateRead", testCreateRead},
		{"ReadRanges", testReadRanges},
		{"CreateExisting", testCreateExisting},
		{"Missing", testMissing},
		{"List", testList},
		{"ListStopsOnError", testListStops},
		{"EmptyObject", testEmptyObject},
		{"LargeObject", testLargeObject},
		{"ConcurrentCreate", testConcurrentCreate},
		{"InvalidNames", testInvalidNames},
		{"Canceled", testCanceled},
		{"Delete", testDelete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t), o) })
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

// payload is n reproducible pseudo-random bytes, so no two cases or
// offsets look alike by accident.
func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustCreate(t *testing.T, b storage.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Create(ctx(t), name, data); err != nil {
		t.Fatalf("Create(%q, %d bytes): %v", name, len(data), err)
	}
}

func mustReadAll(t *testing.T, b storage.Backend, name string) []byte {
	t.Helper()
	got, err := storage.ReadAll(ctx(t), b, name)
	if err != nil {
		t.Fatalf("ReadAll(%q): %v", name, err)
	}
	return got
}

func readRange(t *testing.T, b storage.Backend, name string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := b.Read(ctx(t), name, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func listAll(t *testing.T, b storage.Backend, prefix string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := b.List(ctx(t), prefix, func(i storage.Info) error {
		if _, dup := got[i.Name]; dup {
			t.Errorf("List(%q) reported %q twice", prefix, i.Name)
		}
		got[i.Name] = i.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func testCreateRead(t *testing.T, b storage.Backend, _ Options) {
	if b.Location() == "" {
		t.Error("Location() is empty")
	}
	want := payload(1, 4096)
	mustCreate(t, b, "config", want)
	if got := mustReadAll(t, b, "config"); !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(want))
	}
	info, err := b.Stat(ctx(t), "config")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Name != "config" || info.Size != int64(len(want)) {
		t.Fatalf("Stat = %+v, want {config %d}", info, len(want))
	}
	// Names a URL or a path must escape.
	odd := "names/with space+plus%25&q=1#frag é"
	mustCreate(t, b, odd, []byte("odd"))
	if got := mustReadAll(t, b, odd); string(got) != "odd" {
		t.Fatalf("read %q back as %q", odd, got)
	}
}

func testReadRanges(t *testing.T, b storage.Backend, _ Options) {
	const size = 1000
	data := payload(2, size)
	mustCreate(t, b, "data/ab/abcdef", data)
	for _, c := range []struct {
		off, n int64
		want   []byte
	}{
		{0, -1, data},
		{0, size, data},
		{0, 1, data[:1]},
		{10, 20, data[10:30]},
		{500, -1, data[500:]},
		{size - 1, -1, data[size-1:]},
		{size - 1, 1, data[size-1:]},
		{990, 100, data[990:]}, // past the end: what there is
		{size, -1, nil},        // at the end: nothing
		{size, 10, nil},
		{7, 0, nil},
	} {
		got, err := readRange(t, b, "data/ab/abcdef", c.off, c.n)
		if err != nil {
			t.Errorf("Read(offset %d, length %d): %v", c.off, c.n, err)
			continue
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("Read(offset %d, length %d) = %d bytes, want %d matching bytes", c.off, c.n, len(got), len(c.want))
		}
	}
	if _, err := readRange(t, b, "data/ab/abcdef", size+1, -1); err == nil {
		t.Error("Read from beyond the end succeeded, want an error")
	} else if storage.IsNotFound(err) {
		t.Errorf("Read from beyond the end: %v; it must not say the object is missing", err)
	}
	if _, err := readRange(t, b, "data/ab/abcdef", -1, 10); err == nil {
		t.Error("Read from a negative offset succeeded, want an error")
	}
}

func testCreateExisting(t *testing.T, b storage.Backend, _ Options) {
	orig := payload(3, 100)
	mustCreate(t, b, "keys/k1", orig)
	for _, other := range [][]byte{payload(4, 100), payload(5, 7), nil} {
		err := b.Create(ctx(t), "keys/k1", other)
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second Create with %d bytes: got %v, want ErrExists", len(other), err)
		}
	}
	if got := mustReadAll(t, b, "keys/k1"); !bytes.Equal(got, orig) {
		t.Fatal("a refused Create changed the object's content")
	}
}

func testMissing(t *testing.T, b storage.Backend, o Options) {
	mustCreate(t, b, "data/ab/present", []byte("x"))
	for _, name := range []string{"absent", "data/ab/absent", "data/zz/absent", "data/ab"} {
		if _, err := b.Read(ctx(t), name, 0, -1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Read(%q): got %v, want ErrNotFound", name, err)
		}
		if _, err := b.Read(ctx(t), name, 1, 2); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Read(%q, 1, 2): got %v, want ErrNotFound", name, err)
		}
		if _, err := b.Stat(ctx(t), name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%q): got %v, want ErrNotFound", name, err)
		}
		if o.NoDelete {
			continue
		}
		if err := b.Delete(ctx(t), name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete(%q): got %v, want ErrNotFound", name, err)
		}
	}
}

func listFixture(t *testing.T, b storage.Backend) map[string]int64 {
	objs := map[string]int64{
		"config":         10,
		"data/ab/abcdef": 11,
		"data/ab/abc000": 12,
		"data/cd/cdef00": 13,
		"data/cd/e/deep": 14,
		"index/0001":     0,
		"keys/k1":        16,
		"datafile":       17,
	}
	for name, n := range objs {
		mustCreate(t, b, name, payload(uint64(n), int(n)))
	}
	return objs
}

func pick(all map[string]int64, names ...string) map[string]int64 {
	m := map[string]int64{}
	for _, n := range names {
		m[n] = all[n]
	}
	return m
}

func testList(t *testing.T, b storage.Backend, _ Options) {
	if got := listAll(t, b, ""); len(got) != 0 {
		t.Fatalf("a new backend lists %v, want nothing", slices.Sorted(maps.Keys(got)))
	}
	all := listFixture(t, b)
	for _, c := range []struct {
		prefix string
		want   map[string]int64
	}{
		{"", all},
		{"data/", pick(all, "data/ab/abcdef", "data/ab/abc000", "data/cd/cdef00", "data/cd/e/deep")},
		{"data", pick(all, "data/ab/abcdef", "data/ab/abc000", "data/cd/cdef00", "data/cd/e/deep", "datafile")},
		{"data/ab/", pick(all, "data/ab/abcdef", "data/ab/abc000")},
		{"data/ab/abc0", pick(all, "data/ab/abc000")},
		{"data/c", pick(all, "data/cd/cdef00", "data/cd/e/deep")},
		{"data/cd/e", pick(all, "data/cd/e/deep")},
		{"config", pick(all, "config")},
		{"index/", pick(all, "index/0001")},
		{"nothing/", map[string]int64{}},
		{"data/zz", map[string]int64{}},
	} {
		got := listAll(t, b, c.prefix)
		if !maps.Equal(got, c.want) {
			t.Errorf("List(%q) = %v, want %v", c.prefix, got, c.want)
		}
	}
}

func testListStops(t *testing.T, b storage.Backend, _ Options) {
	listFixture(t, b)
	stop := errors.New("enough")
	calls := 0
	err := b.List(ctx(t), "", func(storage.Info) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List returned %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Fatalf("List called back %d times after an error, want 1", calls)
	}
}

func testEmptyObject(t *testing.T, b storage.Backend, _ Options) {
	mustCreate(t, b, "locks/empty", nil)
	mustCreate(t, b, "locks/empty2", []byte{})
	if got := mustReadAll(t, b, "locks/empty"); len(got) != 0 {
		t.Fatalf("empty object read back as %d bytes", len(got))
	}
	if got, err := readRange(t, b, "locks/empty", 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("Read(0, 10) of an empty object = %d bytes, %v; want 0 bytes", len(got), err)
	}
	info, err := b.Stat(ctx(t), "locks/empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("Stat = %+v, %v; want size 0", info, err)
	}
	if got := listAll(t, b, "locks/"); !maps.Equal(got, map[string]int64{"locks/empty": 0, "locks/empty2": 0}) {
		t.Fatalf("List = %v, want both empty objects with size 0", got)
	}
	if err := b.Create(ctx(t), "locks/empty", nil); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Create of an empty object: got %v, want ErrExists", err)
	}
}

func testLargeObject(t *testing.T, b storage.Backend, o Options) {
	want := payload(6, o.LargeSize)
	mustCreate(t, b, "data/ff/large", want)
	if got := mustReadAll(t, b, "data/ff/large"); !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(want))
	}
	info, err := b.Stat(ctx(t), "data/ff/large")
	if err != nil || info.Size != int64(len(want)) {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(want))
	}
	// Ranges that straddle any block or buffer boundary.
	for _, off := range []int64{0, 1<<20 - 3, 4<<20 - 5, 8<<20 - 7, int64(len(want)) - 100} {
		if off < 0 || off >= int64(len(want)) {
			continue
		}
		n := min(int64(len(want))-off, 1<<20)
		got, err := readRange(t, b, "data/ff/large", off, n)
		if err != nil {
			t.Fatalf("Read(%d, %d): %v", off, n, err)
		}
		if !bytes.Equal(got, want[off:off+n]) {
			t.Fatalf("Read(%d, %d) differs from what was written", off, n)
		}
	}
}

// Two writers racing for one name is how two agents may meet over a pack:
// exactly one must win and the object must be that one's, whole.
func testConcurrentCreate(t *testing.T, b storage.Backend, _ Options) {
	for _, size := range []int{100, 3 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			const writers = 6
			name := fmt.Sprintf("data/race/%d", size)
			contents := make([][]byte, writers)
			errs := make([]error, writers)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range writers {
				contents[i] = payload(uint64(100+i), size)
				wg.Go(func() {
					<-start
					errs[i] = b.Create(ctx(t), name, contents[i])
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil:
					if winner >= 0 {
						t.Fatalf("writers %d and %d both created %q", winner, i, name)
					}
					winner = i
				case !errors.Is(err, storage.ErrExists):
					t.Fatalf("writer %d: got %v, want nil or ErrExists", i, err)
				}
			}
			if winner < 0 {
				t.Fatal("no writer created the object")
			}
			if got := mustReadAll(t, b, name); !bytes.Equal(got, contents[winner]) {
				t.Fatalf("the object is not the winning writer's content")
			}
		})
	}
}

func testInvalidNames(t *testing.T, b storage.Backend, _ Options) {
	for _, name := range []string{"", "/abs", "../escape", "a/../b", "a//b", "a/", "./a", `a\b`, "a/./b", "c:/x"} {
		if err := b.Create(ctx(t), name, []byte("x")); err == nil {
			t.Errorf("Create(%q) succeeded, want an error", name)
		} else if errors.Is(err, storage.ErrExists) {
			t.Errorf("Create(%q): %v; an invalid name must not look taken", name, err)
		}
	}
	if got := listAll(t, b, ""); len(got) != 0 {
		t.Fatalf("invalid names left objects behind: %v", got)
	}
}

func testCanceled(t *testing.T, b storage.Backend, _ Options) {
	mustCreate(t, b, "present", []byte("x"))
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: got %v, want context.Canceled", op, err)
		}
	}
	check("Create", b.Create(c, "new", payload(7, 1000)))
	check("Create large", b.Create(c, "new-large", payload(8, 3<<20)))
	_, err := b.Read(c, "present", 0, -1)
	check("Read", err)
	_, err = b.Stat(c, "present")
	check("Stat", err)
	check("List", b.List(c, "", func(storage.Info) error { return nil }))
	for _, name := range []string{"new", "new-large"} {
		if _, err := b.Stat(ctx(t), name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("after a canceled Create, Stat(%q): got %v, want ErrNotFound", name, err)
		}
	}
}

func testDelete(t *testing.T, b storage.Backend, o Options) {
	mustCreate(t, b, "data/ab/gone", []byte("first"))
	mustCreate(t, b, "data/ab/kept", []byte("kept"))
	err := b.Delete(ctx(t), "data/ab/gone")
	if o.NoDelete {
		if !errors.Is(err, storage.ErrPermission) {
			t.Fatalf("Delete without delete permission: got %v, want ErrPermission", err)
		}
		if got := mustReadAll(t, b, "data/ab/gone"); string(got) != "first" {
			t.Fatalf("a refused Delete changed the object to %q", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Stat(ctx(t), "data/ab/gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after Delete: got %v, want ErrNotFound", err)
	}
	if got := listAll(t, b, ""); !maps.Equal(got, map[string]int64{"data/ab/kept": 4}) {
		t.Fatalf("List after Delete = %v, want only data/ab/kept", got)
	}
	if err := b.Delete(ctx(t), "data/ab/gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second Delete: got %v, want ErrNotFound", err)
	}
	// The name is free again.
	mustCreate(t, b, "data/ab/gone", []byte("second"))
	if got := mustReadAll(t, b, "data/ab/gone"); string(got) != "second" {
		t.Fatalf("re-created object reads %q, want second", got)
	}
}

// Replacer is a backend that can atomically replace an object (the local
// folder and the in-memory store; Azure's answers differ for a missing
// blob and are tested beside it).
type Replacer interface {
	storage.Backend
	Replace(ctx context.Context, name string, data []byte) error
}

// RunReplace checks Replace on an empty backend: a missing object is
// ErrNotFound, an existing one is replaced whole each time, and no
// temporary object is left to list.
func RunReplace(t *testing.T, b Replacer) {
	t.Helper()
	if err := b.Replace(ctx(t), "refs/p", []byte("new")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("replace of a missing object: %v, want ErrNotFound", err)
	}
	mustCreate(t, b, "refs/p", []byte("old"))
	for _, want := range []string{"newer content", "x"} {
		if err := b.Replace(ctx(t), "refs/p", []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := storage.ReadAll(ctx(t), b, "refs/p")
		if err != nil || string(got) != want {
			t.Fatalf("after replace: %q, %v; want %q", got, err, want)
		}
	}
	if n := len(listAll(t, b, "refs/")); n != 1 {
		t.Fatalf("%d objects listed after replacing, want 1 (no temp files)", n)
	}
}
