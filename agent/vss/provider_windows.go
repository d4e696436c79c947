package vss

import (
	"errors"
	"fmt"
	"os"
	"strings"

	govss "github.com/mxk/go-vss"
)

// System is the Windows shadow copy service, through WMI's
// Win32_ShadowCopy (github.com/mxk/go-vss).
type System struct{}

// Create makes a client-accessible shadow copy of volume ("C:\").
func (System) Create(volume string) (string, string, error) {
	id, err := govss.Create(strings.TrimSuffix(volume, `\`))
	if errors.Is(err, os.ErrPermission) {
		return "", "", fmt.Errorf("%w: %v", ErrNotElevated, err)
	}
	if err != nil {
		return "", "", fmt.Errorf("create a shadow copy of %s: %w", volume, err)
	}
	sc, err := govss.Get(id)
	if err != nil {
		err = fmt.Errorf("find the shadow copy %s just made of %s: %w", id, volume, err)
		if rerr := govss.Remove(id); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return "", "", err
	}
	return id, sc.DeviceObject, nil
}

// Remove deletes the shadow copy id; one that no longer exists (removed
// by hand, or by Windows when space ran short) counts as removed.
func (System) Remove(id string) error {
	err := govss.Remove(id)
	if err == nil {
		return nil
	}
	list, lerr := govss.List("")
	if lerr != nil {
		return err
	}
	for _, sc := range list {
		if strings.EqualFold(sc.ID, id) {
			return err
		}
	}
	return nil
}
