package local_test

import (
	"testing"

	"github.com/coffer-backup/coffer/shared/storage/local"
	"github.com/coffer-backup/coffer/shared/storage/storagetest"
)

func TestReplace(t *testing.T) {
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	storagetest.RunReplace(t, b)
}
