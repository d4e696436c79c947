package mem_test

import (
	"bytes"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
	"github.com/coffer-backup/coffer/shared/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return mem.New(t.Name()) })
}

// The engine reuses its pack buffers once Create returns, so the backend
// must keep its own copy.
func TestCreateKeepsACopy(t *testing.T) {
	b := mem.New("")
	buf := []byte("original")
	if err := b.Create(t.Context(), "data/ab/x", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "CHANGED!")
	got, err := storage.ReadAll(t.Context(), b, "data/ab/x")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte("original")) {
		t.Fatalf("object reads %q after the caller reused its buffer, want %q", got, "original")
	}
}

// A callback may use the backend while List runs, as the checker does.
func TestListCallbackMayUseTheBackend(t *testing.T) {
	b := mem.New("")
	for _, n := range []string{"index/1", "index/2"} {
		if err := b.Create(t.Context(), n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	var read []string
	err := b.List(t.Context(), "index/", func(i storage.Info) error {
		data, err := storage.ReadAll(t.Context(), b, i.Name)
		if err != nil {
			return err
		}
		read = append(read, string(data))
		return b.Create(t.Context(), "seen/"+i.Name, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(read) != 2 || read[0] != "index/1" || read[1] != "index/2" {
		t.Fatalf("read %q while listing, want both index objects in name order", read)
	}
}
