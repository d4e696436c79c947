//go:build !linux

package local

import (
	"errors"
	"os"
)

// createDirect reports that direct writes are not used here: macOS and
// Windows offer them under other rules (F_NOCACHE, FILE_FLAG_NO_BUFFERING)
// not measured yet, so spools go through the cache.
func createDirect(string) (*os.File, bool, error) { return nil, false, nil }

func dropDirect(*os.File) error { return errors.ErrUnsupported }

// openDirect reports that direct reads are not used here (see createDirect).
func openDirect(string) *os.File { return nil }
