package mem_test

import (
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

func TestReplace(t *testing.T) {
	b := mem.New(t.Name())
	if err := b.Replace(t.Context(), "refs/p", []byte("new")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("replace of a missing object: %v, want ErrNotFound", err)
	}
	if err := b.Create(t.Context(), "refs/p", []byte("old")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"newer content", "x"} {
		if err := b.Replace(t.Context(), "refs/p", []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := storage.ReadAll(t.Context(), b, "refs/p")
		if err != nil || string(got) != want {
			t.Fatalf("after replace: %q, %v; want %q", got, err, want)
		}
	}
	n := 0
	b.List(t.Context(), "refs/", func(storage.Info) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d objects listed after replacing, want 1 (no temp files)", n)
	}
}
