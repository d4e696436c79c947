//go:build !linux && !windows && !plan9

package logging

// Only Linux has journald.
func underJournald() bool { return false }
