package retry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
	"github.com/coffer-backup/coffer/shared/storage/retry"
)

type replacer interface {
	Replace(ctx context.Context, name string, data []byte) error
}

// noReplace hides the backend's Replace.
type noReplace struct{ storage.Backend }

func TestReplacePassesThroughOrIsRefused(t *testing.T) {
	be := mem.New(t.Name())
	if err := be.Create(t.Context(), "refs/p", []byte("a")); err != nil {
		t.Fatal(err)
	}
	r := retry.New(be, retry.Policy{}).(replacer)
	if err := r.Replace(t.Context(), "refs/p", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if got, _ := storage.ReadAll(t.Context(), be, "refs/p"); string(got) != "b" {
		t.Fatalf("read %q after replace", got)
	}
	r = retry.New(noReplace{be}, retry.Policy{}).(replacer)
	if err := r.Replace(t.Context(), "refs/p", []byte("c")); !errors.Is(err, storage.ErrPermission) {
		t.Fatalf("replace on a backend without it: %v, want ErrPermission", err)
	}
}
