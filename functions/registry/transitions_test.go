package registry

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Every transition from every state, on the rule table alone.
func TestRulesAllowOnlyTheirFromStates(t *testing.T) {
	states := []string{wire.MachineProtected, wire.MachineStopped, wire.MachineDeleted}
	want := map[Transition][]string{
		Stop:       {wire.MachineProtected, wire.MachineStopped},
		StopDelete: {wire.MachineProtected, wire.MachineStopped},
		Resume:     {wire.MachineStopped},
		Undelete:   {wire.MachineDeleted},
	}
	for tr, from := range want {
		rule, err := RuleFor(tr)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range states {
			err := rule.Allows(wire.Machine{Name: "b1", State: st})
			allowed := false
			for _, f := range from {
				allowed = allowed || f == st
			}
			if allowed != (err == nil) || (err != nil && !errors.Is(err, ErrConflict)) {
				t.Errorf("%s from %s: %v, want allowed=%v", tr, st, err, allowed)
			}
		}
	}
	if _, err := RuleFor("explode"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown transition: %v", err)
	}
	// The roles and PINs are those of docs/control-plane.md.
	for _, r := range Rules {
		wantRole, wantPIN := RoleOperator, false
		if r.Transition == StopDelete || r.Transition == Undelete {
			wantRole = RoleContributor
		}
		if r.Transition == StopDelete {
			wantPIN = true
		}
		if r.Role != wantRole || r.PIN != wantPIN {
			t.Errorf("%s: role %s PIN %v, want %s %v", r.Transition, r.Role, r.PIN, wantRole, wantPIN)
		}
	}
}

func registered(t *testing.T, r *Registry, name string) Machine {
	t.Helper()
	v := vaultNamed(t, r, name)
	pub, _, _ := reqsign.NewKey()
	m, err := r.Register(context.Background(), wire.Register{VaultID: v.ID, MachineName: name, PublicKey: reqsign.EncodePublicKey(pub)})
	if err != nil {
		t.Fatal(err)
	}
	full, err := r.Machine(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	return full
}

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

func TestTransitionsStampTimesAndRefuseWrongStates(t *testing.T) {
	r, c := newRegistry(t)
	ctx := context.Background()
	m := registered(t, r, "walk")
	steps := []struct {
		tr      Transition
		want    string
		changed bool
		err     error
	}{
		{Resume, wire.MachineProtected, false, ErrConflict},
		{Undelete, wire.MachineProtected, false, ErrConflict},
		{Stop, wire.MachineStopped, true, nil},
		{Stop, wire.MachineStopped, false, nil},
		{StopDelete, wire.MachineDeleted, true, nil},
		{Stop, wire.MachineDeleted, false, ErrConflict},
		{StopDelete, wire.MachineDeleted, false, ErrConflict},
		{Resume, wire.MachineDeleted, false, ErrConflict},
		{Undelete, wire.MachineStopped, true, nil},
		{Resume, wire.MachineProtected, true, nil},
		{StopDelete, wire.MachineDeleted, true, nil},
	}
	for i, s := range steps {
		c.Advance(time.Minute)
		got, changed, err := r.Transition(ctx, m.ID, s.tr)
		if !errors.Is(err, s.err) || (s.err == nil) != (err == nil) {
			t.Fatalf("step %d %s: %v, want %v", i, s.tr, err, s.err)
		}
		if err != nil {
			got, _ = r.Machine(ctx, m.ID)
		}
		if got.State != s.want || changed != s.changed || !consistent(got.Machine) {
			t.Fatalf("step %d %s: %s changed=%v %+v, want %s changed=%v", i, s.tr, got.State, changed, got.Machine, s.want, s.changed)
		}
		if s.tr == StopDelete && err == nil && !got.DeletedAt.Equal(c.Now()) {
			t.Fatalf("step %d: deletedAt %v, want now %v", i, got.DeletedAt, c.Now())
		}
	}
	// Once the purge date has passed, the purge may be deleting the data:
	// undelete is refused rather than promising what is going.
	c.Advance(r.SoftDelete)
	if _, _, err := r.Transition(ctx, m.ID, Undelete); !errors.Is(err, ErrConflict) {
		t.Fatalf("undelete past the purge date: %v", err)
	}
}

// Stop, resume and undelete racing a delete on one machine, concurrently and
// many times: whatever the order, the record stays consistent.
func TestTransitionsRacingADeleteStayConsistent(t *testing.T) {
	r, _ := newRegistry(t)
	ctx := context.Background()
	m := registered(t, r, "race")
	for round := range 30 {
		start, racer := Stop, Stop
		switch round % 3 {
		case 1:
			start, racer = Stop, Resume
		case 2:
			start, racer = StopDelete, Undelete
		}
		if round%3 != 0 {
			if _, _, err := r.Transition(ctx, m.ID, start); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 5)
		for i := range 5 {
			wg.Go(func() {
				tr := racer
				if i == 0 {
					tr = StopDelete
				}
				if _, _, err := r.Transition(ctx, m.ID, tr); err != nil && !errors.Is(err, ErrConflict) {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := r.Machine(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !consistent(got.Machine) {
			t.Fatalf("round %d (%s racing a delete): %+v", round, racer, got.Machine)
		}
		// Back to protected.
		for got.State != wire.MachineProtected {
			tr := Resume
			if got.State == wire.MachineDeleted {
				tr = Undelete
			}
			if got, _, err = r.Transition(ctx, m.ID, tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}
