package mem_test

import (
	"testing"

	"github.com/coffer-backup/coffer/shared/storage/mem"
	"github.com/coffer-backup/coffer/shared/storage/storagetest"
)

func TestReplace(t *testing.T) { storagetest.RunReplace(t, mem.New(t.Name())) }
