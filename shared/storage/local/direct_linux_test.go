package local

import (
	"os"
	"testing"
)

// TestDropDirectAllowsUnalignedWrites is the fallback for a file system
// that opens a file for direct writes but refuses them: once dropped, a
// write of any length at any offset goes through.
func TestDropDirectAllowsUnalignedWrites(t *testing.T) {
	f, ok, err := createDirect(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skipf("direct writes are not taken under %s", os.TempDir())
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("unaligned"), 3); err == nil {
		t.Log("this file system took an unaligned direct write")
	}
	if err := dropDirect(f); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("unaligned"), 3); err != nil {
		t.Fatalf("after dropping direct writes: %v", err)
	}
}
