//go:build !linux && !darwin

package fsmeta

import "os"

// OpenDir opens a folder to list it.
func OpenDir(path string) (*os.File, error) { return os.Open(path) }

// LstatAt is Lstat of path, an entry of dir.
func LstatAt(_ *os.File, _, path string) (Meta, error) { return Lstat(path) }

// OpenAt opens path, the regular file name of dir, to read it.
func OpenAt(_ *os.File, _, path string) (*os.File, error) { return os.Open(path) }
