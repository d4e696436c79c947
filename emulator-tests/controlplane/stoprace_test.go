package controlplane

import (
	"net/http"
	"sync"
	"testing"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// consistent is the invariant every machine record keeps, whatever order
// admins' requests land in: its data is soft-deleted exactly when its state
// says so (the purge takes only deleted machines), and it is stopped
// exactly when it is not protected.
func consistent(m wire.Machine) bool {
	switch m.State {
	case wire.MachineProtected:
		return m.StoppedAt == nil && m.DeletedAt == nil
	case wire.MachineStopped:
		return m.StoppedAt != nil && m.DeletedAt == nil
	case wire.MachineDeleted:
		return m.StoppedAt != nil && m.DeletedAt != nil && m.PurgeAfter != nil
	}
	return false
}

// Stop, resume and undelete racing a delete, many times over: each request
// either wins or is refused with a conflict, and the record never ends
// half one and half the other (issue 17, bug 2: a machine stopped or
// protected with DeletedAt set is never purged).
func TestStateTransitionsRacingADeleteLeaveAConsistentMachine(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("stop-race")
	a := c.mustRegister(c.credentials(v), "branch-01")
	ctx := ctxT(t)
	base := "/api/v1/vaults/" + v.ID + "/machines/" + a.Reg.MachineID
	get := func() wire.Machine {
		var m wire.Machine
		_, err := c.Reader.Do(ctx, "GET", base, nil, &m)
		must(t, err)
		return m
	}
	// refusedOrDone accepts a request that won, or lost with a conflict.
	refusedOrDone := func(err error) error {
		if se, ok := err.(*cpclient.StatusError); ok && se.Status == http.StatusConflict && se.Body.Code == wire.CodeConflict {
			return nil
		}
		return err
	}
	const rounds, racers = 20, 4
	for round := range rounds {
		// Start from stopped on odd rounds (resume races the delete) and
		// from protected on even ones (stop races it).
		if round%2 == 1 {
			_, err := c.Operator.Do(ctx, "POST", base+"/stop", wire.StopProtection{}, nil)
			must(t, err)
		}
		var pin wire.PIN
		_, err := c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pin)
		must(t, err)

		var wg sync.WaitGroup
		errs := make(chan error, racers+1)
		wg.Go(func() {
			_, err := c.Contributor.Do(ctx, "POST", base+"/stop", wire.StopProtection{DeleteData: true}, nil, cpclient.PIN(pin.PIN))
			errs <- refusedOrDone(err)
		})
		for range racers {
			wg.Go(func() {
				var err error
				if round%2 == 1 {
					_, err = c.Operator.Do(ctx, "POST", base+"/resume", nil, nil)
				} else {
					_, err = c.Operator.Do(ctx, "POST", base+"/stop", wire.StopProtection{}, nil)
				}
				errs <- refusedOrDone(err)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, err)
		}
		m := get()
		if !consistent(m) {
			t.Fatalf("round %d: machine left inconsistent: state %s, stoppedAt %v, deletedAt %v, purgeAfter %v",
				round, m.State, m.StoppedAt, m.DeletedAt, m.PurgeAfter)
		}
		// Back to protected for the next round, whoever won.
		if m.State == wire.MachineDeleted {
			_, err = c.Contributor.Do(ctx, "POST", base+"/undelete", nil, nil)
			must(t, err)
		}
		if get().State == wire.MachineStopped {
			_, err = c.Operator.Do(ctx, "POST", base+"/resume", nil, nil)
			must(t, err)
		}
	}
}
