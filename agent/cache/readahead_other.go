//go:build !linux

package cache

import "os"

// readAhead leaves reading ahead to the system's own heuristics.
func readAhead(*os.File) {}
