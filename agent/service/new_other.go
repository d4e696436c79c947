//go:build !linux && !darwin && !windows

package service

import (
	"context"
	"errors"
	"runtime"
)

// New returns a manager that explains services aren't supported here.
func New() Manager { return unsupported{} }

var errUnsupported = errors.New("coffer service isn't supported on " + runtime.GOOS + ": start `coffer run` from your init system instead")

type unsupported struct{}

func (unsupported) Install(context.Context, Config) error          { return errUnsupported }
func (unsupported) Uninstall(context.Context, string) error        { return errUnsupported }
func (unsupported) Status(context.Context, string) (Status, error) { return Status{}, errUnsupported }
