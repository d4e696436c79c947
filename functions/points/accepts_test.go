package points

import (
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Only a protected machine adds points: a stopped one keeps what it has.
func TestOnlyAProtectedMachineAddsPoints(t *testing.T) {
	for _, tc := range []struct {
		state string
		ok    bool
	}{
		{wire.MachineProtected, true},
		{wire.MachineStopped, false},
		{wire.MachineDeleted, false},
		{"", false},
	} {
		err := AcceptsNew("branch-01", tc.state)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrState)) {
			t.Errorf("state %q: %v, want ok=%v", tc.state, err, tc.ok)
		}
	}
}
