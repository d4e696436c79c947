//go:build !windows

package vss

import "errors"

// System has no shadow copies outside Windows: Create fails, so Start
// reads every volume live. Backups call Start only on Windows.
type System struct{}

func (System) Create(volume string) (string, string, error) {
	return "", "", errors.New("shadow copies exist only on Windows")
}

func (System) Remove(id string) error { return nil }
