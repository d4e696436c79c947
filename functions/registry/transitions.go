package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Role is an admin's role, as in Azure Backup. The API authenticates admins
// into these; the rules below name the least role each change needs.
type Role int

const (
	RoleNone        Role = iota
	RoleReader           // read only
	RoleOperator         // no deletes, no policy changes; credentials, backups, restores
	RoleContributor      // everything
	// RoleSecurityAdmin approves or rejects multi-user authorization
	// requests, and reads. It is a separate capability, not a rank above
	// Contributor: an admin's rank is one of the three above, and holding
	// this role is Principal.SecurityAdmin in the API.
	RoleSecurityAdmin
)

func (r Role) String() string {
	if r < RoleNone || r > RoleSecurityAdmin {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return [...]string{"none", "Backup Reader", "Backup Operator", "Backup Contributor", "Backup Security Admin"}[r]
}

// Transition is a change of a machine's protection state an admin asks for.
type Transition string

const (
	Stop       Transition = "stop protection"
	StopDelete Transition = "stop protection and delete backup data"
	Resume     Transition = "resume protection"
	Undelete   Transition = "undelete backup data"
)

// Rule is one row of the protection state machine.
type Rule struct {
	Transition Transition
	From       []string // the states it may start from
	To         string
	Role       Role // the least role that may ask for it
	PIN        bool // needs a security PIN
}

// Rules is the whole protection state machine, as in MARS: stop keeps the
// data; stop with delete soft-deletes it; undelete returns it to "stopped,
// data retained"; only a stopped machine resumes. Stopping a stopped
// machine again changes nothing.
var Rules = []Rule{
	{Stop, []string{wire.MachineProtected, wire.MachineStopped}, wire.MachineStopped, RoleOperator, false},
	{StopDelete, []string{wire.MachineProtected, wire.MachineStopped}, wire.MachineDeleted, RoleContributor, true},
	{Resume, []string{wire.MachineStopped}, wire.MachineProtected, RoleOperator, false},
	{Undelete, []string{wire.MachineDeleted}, wire.MachineStopped, RoleContributor, false},
}

// RuleFor returns the rule of t.
func RuleFor(t Transition) (Rule, error) {
	for _, r := range Rules {
		if r.Transition == t {
			return r, nil
		}
	}
	return Rule{}, fmt.Errorf("%w: no such state change %q", ErrInvalid, t)
}

// Allows says whether m's state lets the rule apply, and if not, what the
// admin can do instead.
func (r Rule) Allows(m wire.Machine) error {
	if slices.Contains(r.From, m.State) {
		return nil
	}
	switch {
	case m.State == wire.MachineDeleted:
		return fmt.Errorf("%w: machine %s's backup data is deleted; undelete it first (until %s) if you meant to keep it", ErrConflict, m.Name, purgeDate(m))
	case r.Transition == Resume:
		return fmt.Errorf("%w: machine %s is %s; only a stopped machine with retained data can resume", ErrConflict, m.Name, m.State)
	case r.Transition == Undelete:
		return fmt.Errorf("%w: machine %s's backup data is not deleted (it is %s); nothing to undelete", ErrConflict, m.Name, m.State)
	}
	return fmt.Errorf("%w: machine %s is %s; %s needs it to be %s", ErrConflict, m.Name, m.State, r.Transition, strings.Join(r.From, " or "))
}

func purgeDate(m wire.Machine) string {
	if m.PurgeAfter == nil {
		return "it is purged"
	}
	return m.PurgeAfter.UTC().Format("2006-01-02 15:04 UTC")
}

// Apply checks m's state against the rule and changes it, stamping the
// times with now. changed is false when m was already in the target state
// (stopping a stopped machine).
func (r Rule) Apply(m *Machine, now time.Time) (changed bool, err error) {
	if err := r.Allows(m.Machine); err != nil {
		return false, err
	}
	// Past its purge date the data may be going at this moment: an
	// undelete that answered yes while the purge timer deleted the
	// container would be a promise broken.
	if r.Transition == Undelete && m.PurgeAfter != nil && !now.Before(*m.PurgeAfter) {
		return false, fmt.Errorf("%w: machine %s's backup data passed its purge date (%s) and is being purged; it can no longer be undeleted", ErrConflict, m.Name, purgeDate(m.Machine))
	}
	changed = m.State != r.To
	switch r.To {
	case wire.MachineProtected:
		m.StoppedAt, m.DeletedAt = nil, nil
	case wire.MachineStopped:
		if m.StoppedAt == nil {
			m.StoppedAt = &now
		}
		m.DeletedAt = nil
	case wire.MachineDeleted:
		if m.StoppedAt == nil {
			m.StoppedAt = &now
		}
		m.DeletedAt = &now
	}
	m.State = r.To
	return changed, nil
}

// Transition applies t to a machine. The state is checked on the record
// being written, inside ModifyMachine's retry-on-conflict loop, so a
// request racing another (a stop racing a delete) either wins on the
// current state or is refused with ErrConflict; it never writes its state
// over a change it did not see.
func (r *Registry) Transition(ctx context.Context, id string, t Transition) (m Machine, changed bool, err error) {
	rule, err := RuleFor(t)
	if err != nil {
		return Machine{}, false, err
	}
	now := r.now().UTC()
	m, err = r.ModifyMachine(ctx, id, func(m *Machine) error {
		var err error
		changed, err = rule.Apply(m, now)
		return err
	})
	return m, changed, err
}
