package wire

import "time"

// RetentionPreview is what storing a policy would do to the recovery
// points of the machines that follow it, decided now, before it is saved:
// POST /vaults/{v}/policies/{p}/preview with the policy as the body.
type RetentionPreview struct {
	Policy   string           `json:"policy"`
	At       time.Time        `json:"at"` // the server time the points were decided at
	Machines []MachinePreview `json:"machines"`
}

// MachinePreview is one machine's points under the stored policy (Before)
// and the previewed one (After). Retention applies only while a machine
// is protected; a stopped machine keeps its points whatever they say.
type MachinePreview struct {
	MachineID   string         `json:"machineId"`
	MachineName string         `json:"machineName"`
	State       string         `json:"state"`
	Points      []PointPreview `json:"points"` // newest first
	KeptBefore  int            `json:"keptBefore"`
	KeptAfter   int            `json:"keptAfter"`
}

// PointPreview is one point's two decisions.
type PointPreview struct {
	ID          string          `json:"id"`
	Time        time.Time       `json:"time"`
	RetainUntil *time.Time      `json:"retainUntil,omitempty"`
	Before      PreviewDecision `json:"before"`
	After       PreviewDecision `json:"after"`
}

// PreviewDecision is whether a policy keeps a point, and why: "newest",
// "daily", "weekly 2026-W12", "monthly 2026-03", "yearly 2026", "retained
// until …" or "no policy: every point is kept".
type PreviewDecision struct {
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons,omitempty"`
}
