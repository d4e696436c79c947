package vault

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrBusy: another backup or restore job of this machine is running, in
// this process or another (the service, and someone at the command line).
var ErrBusy = errors.New("another backup of this machine is running")

// jobLock is held while a backup runs. The operating system drops it when
// the process ends, even by kill -9, so it never goes stale.
type jobLock struct{ f *os.File }

func lockJob(dir string) (*jobLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, "job.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the job lock: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w; wait for it to finish (see `coffer jobs`)", ErrBusy)
	}
	return &jobLock{f: f}, nil
}

func (l *jobLock) release() {
	unlock(l.f)
	l.f.Close()
}
