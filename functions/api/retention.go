package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/retention"
	"github.com/coffer-backup/coffer/shared/wire"
)

// retentionChange is one thing whose retention rules a request changes:
// a machine, a policy, or the vault's security minimum.
type retentionChange struct {
	subject       string // "machine branch-01 (id)", "policy office", "vault contoso"
	before, after retention.Rules
}

// maxListedChanges bounds what one alert lists.
const maxListedChanges = 20

// guardRetention is the one place that decides whether a change can
// shorten retention. Every route that changes what retention a machine
// gets (editing a policy, assigning another one, turning security
// features off) describes its changes as rules before and after, and
// guardRetention compares them with retention.Shorter; a point's
// retainUntil goes through guardHold and retention.ShorterHold. If anything gets
// shorter the request needs a PIN, and done, called once the change is
// stored, raises the critical alert naming every reduction. Otherwise it
// does nothing and done is a no-op.
func (s *server) guardRetention(c echo.Context, v wire.Vault, operation string, changes []retentionChange) (done func(), err error) {
	found := make([]reductions, 0, len(changes))
	for _, ch := range changes {
		found = append(found, reductions{ch.subject, retention.Shorter(ch.before, ch.after)})
	}
	return s.guard(c, v, operation, found)
}

// guardHold is guardRetention for one point's retainUntil.
func (s *server) guardHold(c echo.Context, v wire.Vault, operation, subject string, r retention.Reduction) (func(), error) {
	return s.guard(c, v, operation, []reductions{{subject, []retention.Reduction{r}}})
}

// reductions are what one subject loses.
type reductions struct {
	subject string
	rs      []retention.Reduction
}

// guard needs a PIN when any subject loses anything, and returns the
// function that raises the critical alert once the change is stored.
func (s *server) guard(c echo.Context, v wire.Vault, operation string, found []reductions) (done func(), err error) {
	var lines []string
	n := 0
	for _, ch := range found {
		rs := ch.rs
		if len(rs) == 0 {
			continue
		}
		n++
		if len(lines) < maxListedChanges {
			parts := make([]string, len(rs))
			for i, r := range rs {
				parts[i] = r.String()
			}
			lines = append(lines, "- "+ch.subject+": "+strings.Join(parts, "; "))
		}
	}
	if n == 0 {
		return func() {}, nil
	}
	if n > len(lines) {
		lines = append(lines, fmt.Sprintf("- and %d more", n-len(lines)))
	}
	if err := s.usePIN(c, v, operation+", which shortens retention"); err != nil {
		var he *httpError
		if errors.As(err, &he) && he.body.Code == wire.CodePINRequired {
			he.body.Message += "; it shortens retention:\n" + strings.Join(lines, "\n")
		}
		return nil, err
	}
	by := principal(c).Name
	ctx := c.Request().Context()
	return func() {
		s.raise(context.WithoutCancel(ctx), wire.Alert{VaultID: v.ID, VaultName: v.Name, Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
			Title: "Retention shortened in vault " + v.Name + ": " + operation,
			Detail: by + " used a security PIN to " + operation + ". Recovery points will expire sooner:\n" + strings.Join(lines, "\n") +
				"\nIf this was not intended, restore the previous settings at once: the retention timer runs every hour."})
	}, nil
}

// machineRules is what retention a machine gets now: its policy's, or
// none while it has no policy (or its policy is gone, which the retention
// timer treats the same way).
func (s *server) machineRules(ctx context.Context, v wire.Vault, m registry.Machine) (retention.Rules, error) {
	if m.Policy == "" {
		return retention.ForPolicy(nil, v.SecurityFeatures), nil
	}
	p, err := s.Registry.Policy(ctx, v.ID, m.Policy)
	if errors.Is(err, registry.ErrNotFound) {
		return retention.ForPolicy(nil, v.SecurityFeatures), nil
	}
	if err != nil {
		return retention.Rules{}, err
	}
	return retention.ForPolicy(&p.Policy, v.SecurityFeatures), nil
}

// hasPoints reports whether a machine has any active point: retention of
// a machine with none shortens nothing.
func (s *server) hasPoints(ctx context.Context, m registry.Machine) (bool, error) {
	ps, err := s.Points.List(ctx, m.ID, false)
	return len(ps) > 0, err
}

// machinesOn lists the vault's machines that follow the named policy.
func (s *server) machinesOn(ctx context.Context, vaultID, name string) ([]registry.Machine, error) {
	ms, err := s.Registry.Machines(ctx, vaultID)
	if err != nil {
		return nil, err
	}
	var out []registry.Machine
	for _, m := range ms {
		if m.Policy == name {
			out = append(out, m)
		}
	}
	return out, nil
}

// policyChanges are the changes of storing next as policy name over old
// (nil: the policy is new): the policy itself, so a policy no machine
// follows yet is guarded too, and every machine that names it. Machines
// can name a policy that does not exist (an assignment that raced the
// policy's deletion); they keep every point until one is stored.
func (s *server) policyChanges(ctx context.Context, v wire.Vault, name string, old *policy.Policy, next policy.Policy) ([]retentionChange, error) {
	before, after := retention.ForPolicy(old, v.SecurityFeatures), retention.ForPolicy(&next, v.SecurityFeatures)
	var changes []retentionChange
	if old != nil {
		changes = append(changes, retentionChange{"policy " + name, before, after})
	}
	ms, err := s.machinesOn(ctx, v.ID, name)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if old == nil {
			// Under a new policy only kept points can be lost.
			if has, err := s.hasPoints(ctx, m); err != nil {
				return nil, err
			} else if !has {
				continue
			}
		}
		changes = append(changes, retentionChange{machineLabel(m), before, after})
	}
	return changes, nil
}

// securityChanges are the changes of turning the vault's security
// features off: the minimum itself, and every machine whose policy it
// was raising.
func (s *server) securityChanges(ctx context.Context, v wire.Vault) ([]retentionChange, error) {
	changes := []retentionChange{{"vault " + v.Name, retention.Rules{KeepAll: true, SecurityMinimum: true}, retention.Rules{KeepAll: true}}}
	ms, err := s.Registry.Machines(ctx, v.ID)
	if err != nil {
		return nil, err
	}
	rules := map[string]retention.Rules{} // by policy: machines share a few
	for _, m := range ms {
		r, ok := rules[m.Policy]
		if !ok {
			if r, err = s.machineRules(ctx, v, m); err != nil {
				return nil, err
			}
			rules[m.Policy] = r
		}
		if r.KeepAll {
			continue
		}
		// The minimum going is listed once, for the vault; a machine is
		// listed only if the minimum was raising its own policy.
		changes = append(changes, retentionChange{machineLabel(m),
			retention.Rules{Retention: r.Effective(), TimeZone: r.TimeZone},
			retention.Rules{Retention: r.Retention, TimeZone: r.TimeZone}})
	}
	return changes, nil
}

func machineLabel(m registry.Machine) string {
	return "machine " + m.Name + " (" + m.ID + ")"
}

// guardAssign guards assigning policy next to machine m. A machine with no
// point yet has nothing to shorten, so its first policy needs no PIN.
func (s *server) guardAssign(c echo.Context, v wire.Vault, m registry.Machine, next registry.Policy) (func(), error) {
	ctx := c.Request().Context()
	before, err := s.machineRules(ctx, v, m)
	if err != nil {
		return nil, err
	}
	after := retention.ForPolicy(&next.Policy, v.SecurityFeatures)
	if len(retention.Shorter(before, after)) == 0 {
		return func() {}, nil
	}
	has, err := s.hasPoints(ctx, m)
	if err != nil {
		return nil, err
	}
	if !has {
		return func() {}, nil
	}
	from := "no policy"
	if m.Policy != "" {
		from = "policy " + m.Policy
	}
	return s.guardRetention(c, v, "move "+m.Name+" from "+from+" to policy "+next.Name,
		[]retentionChange{{machineLabel(m), before, after}})
}

// updatePoint changes how long a point is kept past its policy. Clearing
// or bringing forward a retainUntil that still protects the point
// shortens its retention, so it goes through the same guard.
func (s *server) updatePoint(c echo.Context) error {
	var u wire.PointUpdate
	if err := bind(c, &u); err != nil {
		return err
	}
	v, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p, err := s.Points.Get(ctx, m.ID, c.Param("point"))
	if err != nil {
		return err
	}
	if p.State != wire.PointActive {
		// Refused before the guard, so no PIN is used up.
		return fail(http.StatusConflict, wire.CodeConflict, "point %s is deleted; undelete it first", p.ID)
	}
	done := func() {}
	if r, shorter := retention.ShorterHold(p.RetainUntil, u.RetainUntil, s.Now()); shorter {
		what := "point " + p.ID + " of " + m.Name + " (" + p.Time.UTC().Format(time.RFC3339) + ")"
		if done, err = s.guardHold(c, v, "change how long "+what+" is kept", what, r); err != nil {
			return err
		}
	}
	updated, err := s.Points.SetRetainUntil(ctx, m.ID, p.ID, p.RetainUntil, u.RetainUntil)
	if err != nil {
		return err
	}
	done()
	return c.JSON(http.StatusOK, updated)
}
