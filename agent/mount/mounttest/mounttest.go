// Package mounttest holds what tests of coffer mount share.
package mounttest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireFUSE skips a test, with one line saying why, where this machine
// cannot mount.
func RequireFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("skipped: /dev/fuse is missing, so nothing can be mounted here")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if _, err := exec.LookPath("fusermount"); err != nil {
			t.Skip("skipped: fusermount is missing; install fuse3 (make deps does)")
		}
	}
}
