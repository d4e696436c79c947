package faulty_test

import (
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage/faulty"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

func TestReplaceIsAWrite(t *testing.T) {
	f := faulty.New(mem.New(t.Name()))
	f.StopAfterWrites(2)
	if err := f.Create(t.Context(), "refs/p", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := f.Replace(t.Context(), "refs/p", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := f.Replace(t.Context(), "refs/p", []byte("c")); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("replace after the last allowed write: %v", err)
	}
	if w := f.Writes(); len(w) != 2 || w[1].Name != "refs/p" {
		t.Fatalf("writes %v", w)
	}
}
