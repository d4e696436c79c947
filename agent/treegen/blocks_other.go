//go:build !unix

package treegen

import "os"

// blocks is the file's size in 512-byte blocks: allocation is not read
// here (GetCompressedFileSize on Windows), so holes are not compared.
func blocks(p string) int64 {
	fi, err := os.Lstat(p)
	if err != nil {
		return 0
	}
	return fi.Size() / 512
}
