package azureblob_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/azureblob"
)

func TestReplace(t *testing.T) {
	cont := newContainer(t)
	b, err := azureblob.New(sasURL(t, cont, full), azureblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Replace(t.Context(), "refs/p", []byte("new")); err == nil {
		t.Fatal("replace of a missing blob succeeded")
	}
	if err := b.Create(t.Context(), "refs/p", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := b.Replace(t.Context(), "refs/p", []byte("newer content")); err != nil {
		t.Fatal(err)
	}
	if got, err := storage.ReadAll(t.Context(), b, "refs/p"); err != nil || string(got) != "newer content" {
		t.Fatalf("after replace: %q, %v", got, err)
	}
	// The agent's create-only SAS cannot replace, and says which letter is missing.
	agent, err := azureblob.New(sasURL(t, cont, crl), azureblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = agent.Replace(t.Context(), "refs/p", []byte("evil"))
	if !errors.Is(err, storage.ErrPermission) || !strings.Contains(err.Error(), `write ("w")`) {
		t.Fatalf("replace with a create-only SAS: %v", err)
	}
}
