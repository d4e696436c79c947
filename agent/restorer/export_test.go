package restorer

import "testing"

// SetBatchFiles makes the restore hand over batches of n files for the
// rest of the test.
func SetBatchFiles(t testing.TB, n int) {
	old := batchFiles
	batchFiles = n
	t.Cleanup(func() { batchFiles = old })
}
