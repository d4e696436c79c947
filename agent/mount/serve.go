package mount

import (
	"context"
	"log/slog"
	"os/exec"
	"runtime"
)

// Serve mounts the points on dir and serves them in the foreground until
// the mount is removed from outside or ctx ends (Ctrl-C), when it unmounts.
// ready, if set, is called once the mount is in place.
//
// A mount still in use when ctx ends (a shell inside it, an open file) is
// detached instead: it disappears from dir at once, and Serve returns when
// the programs using it let go, so none of them sees its files vanish.
func Serve(ctx context.Context, dir string, o Options, ready func()) error {
	mt, err := Mount(ctx, dir, o)
	if err != nil {
		return err
	}
	gone := make(chan struct{})
	go func() { mt.Wait(); close(gone) }()
	if ready != nil {
		ready()
	}
	select {
	case <-gone:
		return nil
	case <-ctx.Done():
	}
	if err := mt.Unmount(); err != nil {
		if detachErr := detach(dir); detachErr != nil {
			slog.Error("mount: could not unmount", "err", err, "detach", detachErr)
			<-gone
			return nil
		}
		slog.Warn("mount: still in use, so it was detached; coffer exits once the programs using it close their files", "mountpoint", dir)
	}
	<-gone
	return nil
}

// detach lazily unmounts a busy mount.
func detach(dir string) error {
	if runtime.GOOS == "darwin" {
		return exec.Command("umount", "-f", dir).Run()
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(bin); err == nil {
			if out, err := exec.Command(p, "-u", "-z", dir).CombinedOutput(); err != nil {
				return &detachError{err, string(out)}
			}
			return nil
		}
	}
	return exec.Command("umount", "-l", dir).Run()
}

type detachError struct {
	err error
	out string
}

func (e *detachError) Error() string { return e.err.Error() + ": " + e.out }
func (e *detachError) Unwrap() error { return e.err }
