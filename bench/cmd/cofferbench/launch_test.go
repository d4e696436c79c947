//go:build unix

package main

import (
	"os"
	"testing"

	"github.com/coffer-backup/coffer/bench/measure"
)

// The measured commands run through a launcher, a copy of this test
// binary (bench/measure/launch.go).
func TestMain(m *testing.M) {
	measure.MaybeLaunch()
	os.Exit(m.Run())
}
