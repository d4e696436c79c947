//go:build !linux

package fsmeta

import "os"

// ApplyFile is Linux-only for now: elsewhere it does nothing and reports
// ok=false, so the caller closes the file and uses Apply.
func ApplyFile(f *os.File, m Meta, o ApplyOptions) (ok bool, err error) { return false, nil }
