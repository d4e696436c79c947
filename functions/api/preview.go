package api

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/retention"
	"github.com/coffer-backup/coffer/shared/wire"
)

// previewPolicy decides, without storing anything, which recovery points
// of the machines following a policy the stored version and the body's
// version keep now, and why: the GFS picture an admin checks before
// saving a retention change. The body is validated as PUT would.
func (s *server) previewPolicy(c echo.Context) error {
	next, v, name, err := s.policyBody(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var old *policy.Policy
	switch stored, err := s.Registry.Policy(ctx, v.ID, name); {
	case err == nil:
		old = &stored.Policy
	case !errors.Is(err, registry.ErrNotFound):
		return err
	}
	before, after := retention.ForPolicy(old, v.SecurityFeatures), retention.ForPolicy(next, v.SecurityFeatures)
	ms, err := s.machinesOn(ctx, v.ID, name)
	if err != nil {
		return err
	}
	now := s.Now()
	out := wire.RetentionPreview{Policy: name, At: now, Machines: []wire.MachinePreview{}}
	for _, m := range ms {
		ps, err := s.Points.List(ctx, m.ID, false)
		if err != nil {
			return err
		}
		mp := wire.MachinePreview{MachineID: m.ID, MachineName: m.Name, State: m.State, Points: make([]wire.PointPreview, len(ps))}
		b, a := decide(ps, before, now), decide(ps, after, now)
		for i, p := range ps {
			mp.Points[i] = wire.PointPreview{ID: p.ID, Time: p.Time, RetainUntil: p.RetainUntil, Before: b[i], After: a[i]}
			if b[i].Keep {
				mp.KeptBefore++
			}
			if a[i].Keep {
				mp.KeptAfter++
			}
		}
		slices.SortFunc(mp.Points, func(x, y wire.PointPreview) int { return y.Time.Compare(x.Time) })
		out.Machines = append(out.Machines, mp)
	}
	return c.JSON(http.StatusOK, out)
}

// decide is what the retention timer would decide for ps under r at now:
// a point past the policy is still kept while its retainUntil holds.
func decide(ps []wire.Point, r retention.Rules, now time.Time) []wire.PreviewDecision {
	out := make([]wire.PreviewDecision, len(ps))
	if r.KeepAll {
		for i := range out {
			out[i] = wire.PreviewDecision{Keep: true, Reasons: []string{"no policy: every point is kept"}}
		}
		return out
	}
	loc := time.UTC
	if r.TimeZone != "" {
		if l, err := time.LoadLocation(r.TimeZone); err == nil {
			loc = l
		}
	}
	in := make([]retention.Point, len(ps))
	for i, p := range ps {
		in[i] = retention.Point{ID: p.ID, Time: p.Time}
	}
	for i, d := range retention.Apply(in, r.Effective(), loc, now) {
		out[i] = wire.PreviewDecision{Keep: d.Keep, Reasons: d.Reasons}
		if u := ps[i].RetainUntil; u != nil && u.After(now) {
			out[i].Keep = true
			out[i].Reasons = append(out[i].Reasons, "retained until "+u.UTC().Format(time.RFC3339))
		}
	}
	return out
}
