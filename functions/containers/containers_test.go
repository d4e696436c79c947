package containers

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
)

var emus ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emus.Main(m)) }

// emulator starts Azurite on first use; under -short it skips t.
func emulator(t testing.TB) *azurite.Azurite {
	t.Helper()
	return emus.StartAzurite(t)
}

const (
	day   = 24 * time.Hour
	grace = 14 * day
)

// later is a clock 15 days ahead: everything written now is older than grace.
func later() time.Time { return time.Now().Add(15 * day) }

var seq atomic.Int64

// fixture is one machine's container with a fake repository in it.
type fixture struct {
	t    *testing.T
	name string
	cc   *container.Client
	c    *Containers
	size map[string]int64 // pack ID → bytes written
}

func newFixture(t *testing.T, now func() time.Time) *fixture {
	t.Helper()
	svc, err := service.NewClientFromConnectionString(emulator(t).ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, name: fmt.Sprintf("m-%d-%d", time.Now().UnixNano(), seq.Add(1)), c: New(svc, now), size: map[string]int64{}}
	f.cc = svc.NewContainerClient(f.name)
	if err := f.c.Ensure(t.Context(), f.name); err != nil {
		t.Fatal(err)
	}
	return f
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newIDs(n int) []string {
	ids := make([]string, n)
	for k := range ids {
		ids[k] = newID()
	}
	return ids
}

func (f *fixture) put(name string, body []byte) {
	f.t.Helper()
	if _, err := f.cc.NewBlockBlobClient(name).UploadBuffer(f.t.Context(), body, nil); err != nil {
		f.t.Fatalf("upload %s: %v", name, err)
	}
}

// packs stores packs of random bytes, each of a different size; only
// their names matter.
func (f *fixture) packs(ids ...string) {
	f.t.Helper()
	for _, id := range ids {
		n := 100 + int64(len(f.size))*10
		b := make([]byte, n)
		rand.Read(b)
		f.put(packrefs.PackName(id), b)
		f.size[id] = n
	}
}

// point stores points/<id> and refs/<id> naming packs.
func (f *fixture) point(id string, packs ...string) {
	f.t.Helper()
	f.put("points/"+id, []byte("sealed point"))
	enc, err := packrefs.New(id, packs).Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	f.put(packrefs.Name(id), enc)
}

func (f *fixture) names(prefix string) []string {
	f.t.Helper()
	var names []string
	err := list(f.t.Context(), f.cc, prefix, func(it *container.BlobItem) error {
		names = append(names, *it.Name)
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return names
}

// storedPacks are the pack IDs under data/, sorted.
func (f *fixture) storedPacks() []string {
	var ids []string
	for _, n := range f.names("data/") {
		if id, ok := layout.ParsePack(n); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func (f *fixture) sizeOf(ids ...string) int64 {
	var n int64
	for _, id := range ids {
		n += f.size[id]
	}
	return n
}

func TestGCDeletesOnlyPacksNoRemainingPointNeeds(t *testing.T) {
	f := newFixture(t, later)
	ctx := t.Context()
	pk := newIDs(6) // 0..4 referenced; 5 left by a killed backup
	slices.Sort(pk)
	f.packs(pk...)
	p1, p2, p3 := newID(), newID(), newID()
	f.point(p1, pk[0], pk[1], pk[2])
	f.point(p2, pk[1], pk[2], pk[3])
	f.point(p3, pk[3], pk[4])
	f.put("data/zz/not-a-pack", []byte("left alone")) // not ours to judge

	if err := f.c.DeletePoint(ctx, f.name, p1); err != nil {
		t.Fatal(err)
	}
	res, err := f.c.CollectGarbage(ctx, f.name, grace)
	if err != nil {
		t.Fatal(err)
	}
	want := GCResult{Referenced: 4, Deleted: 2, BytesFreed: f.sizeOf(pk[0], pk[5]), DeletedPacks: sorted(pk[0], pk[5])}
	if !equal(res, want) {
		t.Fatalf("first GC = %+v, want %+v", res, want)
	}
	if got := f.storedPacks(); !slices.Equal(got, pk[1:5]) {
		t.Fatalf("packs left %v, want %v", got, pk[1:5])
	}
	wantPoints := sorted("points/"+p2, "points/"+p3, "refs/"+p2, "refs/"+p3)
	if got := sorted(append(f.names("points/"), f.names("refs/")...)...); !slices.Equal(got, wantPoints) {
		t.Fatalf("points left %v, want %v", got, wantPoints)
	}
	if got := f.names("data/zz/"); len(got) != 1 {
		t.Fatalf("unrecognised object under data/ was touched: %v", got)
	}
	for _, p := range []string{p2, p3} {
		if missing, err := f.c.MissingPacks(ctx, f.name, p); err != nil || len(missing) != 0 {
			t.Fatalf("point %s after GC: missing %v, %v", p, missing, err)
		}
	}

	// Nothing more to collect.
	res, err = f.c.CollectGarbage(ctx, f.name, grace)
	if err != nil || !equal(res, GCResult{Referenced: 4}) {
		t.Fatalf("second GC = %+v, %v; want nothing deleted", res, err)
	}

	// Deleting p2 frees the packs only it and p1 shared.
	if err := f.c.DeletePoint(ctx, f.name, p2); err != nil {
		t.Fatal(err)
	}
	res, err = f.c.CollectGarbage(ctx, f.name, grace)
	want = GCResult{Referenced: 2, Deleted: 2, BytesFreed: f.sizeOf(pk[1], pk[2]), DeletedPacks: sorted(pk[1], pk[2])}
	if err != nil || !equal(res, want) {
		t.Fatalf("GC after deleting p2 = %+v, %v; want %+v", res, err, want)
	}
	if got := f.storedPacks(); !slices.Equal(got, pk[3:5]) {
		t.Fatalf("packs left %v, want %v", got, pk[3:5])
	}
}

func equal(a, b GCResult) bool {
	return a.Referenced == b.Referenced && a.Deleted == b.Deleted && a.KeptYoung == b.KeptYoung &&
		a.BytesFreed == b.BytesFreed && slices.Equal(a.DeletedPacks, b.DeletedPacks)
}

// Packs a running backup has uploaded but not yet referenced survive as
// long as they are younger than the grace period, by the injected clock.
func TestGCKeepsYoungUnreferencedPacks(t *testing.T) {
	for _, tc := range []struct {
		name        string
		now         func() time.Time
		grace       time.Duration
		wantDeleted int
	}{
		{"just written, one hour grace", time.Now, time.Hour, 0},
		{"15 days old, 30 days grace", later, 30 * day, 0},
		{"15 days old, 14 days grace", later, grace, 3},
		{"just written, no grace", func() time.Time { return time.Now().Add(time.Minute) }, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.now)
			f.packs(newIDs(3)...)
			res, err := f.c.CollectGarbage(t.Context(), f.name, tc.grace)
			if err != nil {
				t.Fatal(err)
			}
			if res.Deleted != tc.wantDeleted || res.KeptYoung != 3-tc.wantDeleted || len(f.storedPacks()) != 3-tc.wantDeleted {
				t.Fatalf("GC = %+v, %d packs left; want %d deleted, the rest kept young", res, len(f.storedPacks()), tc.wantDeleted)
			}
		})
	}
}

// A pack list no registered point owns that is junk (not a valid list,
// naming another point, or oddly named) is quarantined, reported once, and
// GC goes on without it; an agent cannot stop GC for good.
func TestGCQuarantinesJunkPackListsAndGoesOn(t *testing.T) {
	good, other := newID(), newID()
	for _, tc := range []struct {
		name string
		obj  string // refs object name
		body string
	}{
		{"not JSON", good, `{"version":1,"point":`},
		{"empty", good, ``},
		{"newer version", good, `{"version":2,"point":"` + good + `","packs":[]}`},
		{"unsorted", good, `{"version":1,"point":"` + good + `","packs":["` + strings.Repeat("b", 64) + `","` + strings.Repeat("a", 64) + `"]}`},
		{"bad pack ID", good, `{"version":1,"point":"` + good + `","packs":["../../points/x"]}`},
		{"names another point", good, `{"version":1,"point":"` + other + `","packs":[]}`},
		{"odd name", "not-a-point", `{"version":1,"point":"` + good + `","packs":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, later)
			pk := newIDs(3)
			slices.Sort(pk)
			f.packs(pk...)
			healthy := newID()
			f.point(healthy, pk[0]) // a healthy point beside it
			f.put("refs/"+tc.obj, []byte(tc.body))
			res, err := f.c.Collect(t.Context(), f.name, GCOptions{Grace: grace, Registered: func(p string) bool { return p == healthy }})
			if err != nil {
				t.Fatalf("GC with a junk refs/%s: %v", tc.obj, err)
			}
			if len(res.Quarantined) != 1 || res.Quarantined[0].Object != "refs/"+tc.obj || res.Quarantined[0].Reason == "" {
				t.Fatalf("quarantined %+v, want refs/%s with a reason", res.Quarantined, tc.obj)
			}
			if res.Deleted != 2 || !slices.Equal(f.storedPacks(), pk[:1]) {
				t.Fatalf("GC deleted %d packs; %v left, want %v", res.Deleted, f.storedPacks(), pk[:1])
			}
			// Left in place for inspection, and not reported again.
			if !slices.Contains(f.names("refs/"), "refs/"+tc.obj) {
				t.Fatal("the quarantined object was removed")
			}
			res, err = f.c.Collect(t.Context(), f.name, GCOptions{Grace: grace})
			if err != nil || len(res.Quarantined) != 0 || res.Referenced != 1 {
				t.Fatalf("second GC = %+v, %v", res, err)
			}
		})
	}
}

// A registered point's list was valid when it was registered; if it no
// longer decodes, GC stops before deleting anything.
func TestGCStopsOnARegisteredPointsBrokenList(t *testing.T) {
	f := newFixture(t, later)
	orphans := newIDs(2)
	slices.Sort(orphans)
	f.packs(orphans...)
	p := newID()
	f.put("refs/"+p, []byte(`{"version":1,"point":`))
	res, err := f.c.Collect(t.Context(), f.name, GCOptions{Grace: grace, Registered: func(id string) bool { return id == p }})
	if err == nil || !strings.Contains(err.Error(), "deleted nothing") {
		t.Fatalf("err = %v, want an error saying nothing was deleted", err)
	}
	if res.Deleted != 0 || len(res.Quarantined) != 0 || !slices.Equal(f.storedPacks(), orphans) {
		t.Fatalf("GC = %+v; %v left, want %v", res, f.storedPacks(), orphans)
	}
}

// A backup that registers its point while GC runs keeps its packs: GC looks
// at refs/ again right before deleting.
func TestGCRechecksPackListsBeforeDeleting(t *testing.T) {
	f := newFixture(t, later)
	pk := newIDs(3)
	f.packs(pk...)
	late := newID()
	f.c.beforeRecheck = func() { f.point(late, pk[0], pk[1]) }
	res, err := f.c.CollectGarbage(t.Context(), f.name, grace)
	if err != nil {
		t.Fatal(err)
	}
	want := GCResult{Referenced: 2, Deleted: 1, BytesFreed: f.sizeOf(pk[2]), DeletedPacks: pk[2:]}
	if !equal(res, want) {
		t.Fatalf("GC = %+v, want %+v", res, want)
	}
	if missing, err := f.c.MissingPacks(t.Context(), f.name, late); err != nil || len(missing) != 0 {
		t.Fatalf("the late point misses %v (%v)", missing, err)
	}
}

func TestGCRefusesBadArguments(t *testing.T) {
	f := newFixture(t, later)
	for _, tc := range []struct {
		name, container string
		grace           time.Duration
	}{
		{"negative grace", f.name, -time.Second},
		{"invalid container name", "$logs", grace},
		{"missing container", "absent-" + f.name, grace},
	} {
		if _, err := f.c.CollectGarbage(t.Context(), tc.container, tc.grace); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestMissingPacks(t *testing.T) {
	f := newFixture(t, time.Now)
	ctx := t.Context()
	pk := newIDs(5)
	slices.Sort(pk)
	f.packs(pk[0], pk[2], pk[4])
	p := newID()
	f.point(p, pk...)

	missing, err := f.c.MissingPacks(ctx, f.name, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{pk[1], pk[3]}; !slices.Equal(missing, want) {
		t.Fatalf("missing %v, want %v", missing, want)
	}

	f.packs(pk[1], pk[3])
	if missing, err := f.c.MissingPacks(ctx, f.name, p); err != nil || missing != nil {
		t.Fatalf("after uploading the rest: missing %v, %v", missing, err)
	}

	absent := newID()
	_, err = f.c.MissingPacks(ctx, f.name, absent)
	if err == nil || !strings.Contains(err.Error(), "upload") || !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Fatalf("point without refs/: err = %v, want BlobNotFound telling the agent to upload it", err)
	}
	for _, bad := range []string{"", "../refs/x", strings.ToUpper(p)} {
		if _, err := f.c.MissingPacks(ctx, f.name, bad); err == nil {
			t.Errorf("point ID %q accepted", bad)
		}
	}
}

func TestUsage(t *testing.T) {
	f := newFixture(t, time.Now)
	ctx := t.Context()
	if u, err := f.c.Usage(ctx, f.name); err != nil || u != (Usage{}) {
		t.Fatalf("empty container: %+v, %v", u, err)
	}
	f.put("config", make([]byte, 200))
	f.put("index/"+newID(), make([]byte, 300))
	pk := newIDs(3)
	f.packs(pk...)
	want := Usage{Bytes: 500 + f.sizeOf(pk...), Objects: 5, Packs: 3}
	if u, err := f.c.Usage(ctx, f.name); err != nil || u != want {
		t.Fatalf("usage %+v, %v; want %+v", u, err, want)
	}
	if _, err := f.c.Usage(ctx, "absent-"+f.name); err == nil {
		t.Fatal("usage of a missing container: no error")
	}
}

func TestEnsureAndDeleteAreIdempotent(t *testing.T) {
	f := newFixture(t, time.Now)
	ctx := t.Context()
	if err := f.c.Ensure(ctx, f.name); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	f.put("config", []byte("{}"))
	if err := f.c.Ensure(ctx, f.name); err != nil || len(f.names("")) != 1 {
		t.Fatalf("Ensure of a container with data: %v, objects %v", err, f.names(""))
	}
	for k := range 2 {
		if err := f.c.Delete(ctx, f.name); err != nil {
			t.Fatalf("Delete #%d: %v", k+1, err)
		}
	}
	if _, err := f.cc.GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		t.Fatalf("after Delete: %v, want ContainerNotFound", err)
	}
	for _, bad := range []string{"$root", "Upper", "a", "a--b"} {
		if err := f.c.Ensure(ctx, bad); err == nil {
			t.Errorf("Ensure(%q) accepted", bad)
		}
		if err := f.c.Delete(ctx, bad); err == nil {
			t.Errorf("Delete(%q) accepted", bad)
		}
	}
}

func TestDeletePointIsIdempotent(t *testing.T) {
	f := newFixture(t, time.Now)
	ctx := t.Context()
	p, keep := newID(), newID()
	f.point(p)
	f.point(keep)
	for k := range 2 {
		if err := f.c.DeletePoint(ctx, f.name, p); err != nil {
			t.Fatalf("DeletePoint #%d: %v", k+1, err)
		}
	}
	want := sorted("points/"+keep, "refs/"+keep)
	if got := f.names(""); !slices.Equal(got, want) {
		t.Fatalf("objects left %v, want %v", got, want)
	}
	// Only refs/ left behind by an interrupted delete.
	half := newID()
	enc, _ := packrefs.New(half, nil).Encode()
	f.put(packrefs.Name(half), enc)
	if err := f.c.DeletePoint(ctx, f.name, half); err != nil || slices.Contains(f.names("refs/"), packrefs.Name(half)) {
		t.Fatalf("finishing an interrupted delete: %v", err)
	}
	if err := f.c.DeletePoint(ctx, "absent-"+f.name, p); err != nil {
		t.Fatalf("DeletePoint in a missing container: %v", err)
	}
	for _, bad := range []string{"", "x", "../config", strings.Repeat("g", 64)} {
		if err := f.c.DeletePoint(ctx, f.name, bad); err == nil {
			t.Errorf("point ID %q accepted", bad)
		}
	}
}

func TestPackID(t *testing.T) {
	id := newID()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{packrefs.PackName(id), true},
		{"data/" + id, false},
		{"data/00/" + id, id[:2] == "00"},
		{"data/" + id[:2] + "/" + id + "x", false},
		{"data/" + id[:2] + "/" + strings.ToUpper(id), false},
		{"index/" + id[:2] + "/" + id, false},
	} {
		if _, ok := layout.ParsePack(tc.name); ok != tc.ok {
			t.Errorf("ParsePack(%q) ok = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}
