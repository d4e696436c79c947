//go:build !windows

package service

import "context"

// RunAsWindowsService returns false: only Windows has its service control
// manager; elsewhere signals stop the agent.
func RunAsWindowsService(name string, run func(ctx context.Context) error) (bool, error) {
	return false, nil
}
