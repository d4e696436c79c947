package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/retry"
)

// reachWithin bounds the first contact with a repository in a container. A
// refused connection fails in seconds through the retry wrapper, but a host
// that drops packets (a firewall, a wrong private endpoint) leaves each try
// waiting for the SDK's 30 s dial timeout, and the user in silence.
var reachWithin = 15 * time.Second

// reach asks the storage for the repository's config, once, within
// reachWithin, before anything else is sent: a storage that does not
// answer fails with one message saying what to check. Whether the config
// is there, and every other answer, is left to repository.Open.
func reach(ctx context.Context, be storage.Backend) error {
	rctx, cancel := context.WithTimeout(ctx, reachWithin)
	defer cancel()
	_, err := be.Stat(rctx, layout.Config)
	switch {
	case err == nil || ctx.Err() != nil:
		return nil // reached, or the caller stopped: its error comes from what follows
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("cannot reach the storage at %s: no answer within %s; check the address, the network and any firewall or proxy", be.Location(), reachWithin)
	case retry.Unreachable(err):
		return err // already says so, after the wrapper's tries
	}
	return nil
}
