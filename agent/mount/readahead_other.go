//go:build darwin

package mount

// raiseReadAhead does nothing: macFUSE takes no per-mount read-ahead.
func raiseReadAhead(dir string) {}
