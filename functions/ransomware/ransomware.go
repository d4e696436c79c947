// Package ransomware decides whether a backup's changes look like a machine
// whose files are being encrypted, from the counters the agent reports
// (wire.ChangeCounters: counts only, never names or content) and the
// machine's own history of normal backups.
//
// Ransomware leaves marks no normal day does: many files rewritten at once
// with content that no longer compresses (encryption output is random), often
// renamed to one new extension, the originals gone. Each mark is a signal
// with an absolute floor (a share of the parent point's files, and a minimum
// count so a tiny tree's single edit is not a "share"), raised by the
// machine's baseline: a machine that normally rewrites a third of its files
// every night must go well beyond that before the alarm fires. The decision
// is pure; the API stores history and acts on the verdict.
package ransomware

import (
	"fmt"
	"strings"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Thresholds tune the alarm. The defaults (Default) come from the
// measurements in docs/benchmarks.md.
type Thresholds struct {
	// MinParentFiles: a parent point with fewer files is not judged.
	MinParentFiles int64
	// A signal fires when its count reaches Min and its share of the
	// parent's files reaches Share (and the baseline allows, below).
	Incompressible Signal // changed or renamed files that stopped compressing
	Overwritten    Signal // files of several chunks rewritten whole at the same size
	Rewritten      Signal // changed plus renamed files
	NewExtension   Signal // the most new files sharing one new extension
	Deleted        Signal // files gone since the parent
	// Headroom: a signal's share must also reach this multiple of its
	// largest share in the baseline, the machine's recent normal backups
	// (false positives an admin acknowledged included: that is how the
	// baseline learns).
	Headroom float64
	// History is how many recent backups make the baseline.
	History int
}

// Signal is one mark's floor.
type Signal struct {
	Min   int64
	Share float64
}

// Default is what the control plane uses.
var Default = Thresholds{
	MinParentFiles: 5,
	Incompressible: Signal{Min: 2, Share: 0.05},
	Overwritten:    Signal{Min: 2, Share: 0.05},
	Rewritten:      Signal{Min: 20, Share: 0.15},
	NewExtension:   Signal{Min: 10, Share: 0.05},
	Deleted:        Signal{Min: 100, Share: 0.50},
	Headroom:       1.5,
	History:        30,
}

// Verdict is the decision on one backup.
type Verdict struct {
	Suspicious bool
	// Reasons name each signal that fired, with its figures, for the alert
	// and the point's flag.
	Reasons []string
}

// Reason is the reasons on one line.
func (v Verdict) Reason() string { return strings.Join(v.Reasons, "; ") }

type mark struct {
	name  string
	count func(c wire.ChangeCounters) int64
	sig   func(t Thresholds) Signal
	says  string
}

var marks = []mark{
	{"incompressible", func(c wire.ChangeCounters) int64 { return c.Incompressible },
		func(t Thresholds) Signal { return t.Incompressible },
		"stopped compressing, as encrypted data does"},
	{"overwritten", func(c wire.ChangeCounters) int64 { return c.Overwritten },
		func(t Thresholds) Signal { return t.Overwritten },
		"were rewritten whole at the same size"},
	{"rewritten", func(c wire.ChangeCounters) int64 { return c.Changed + c.Renamed },
		func(t Thresholds) Signal { return t.Rewritten },
		"were rewritten"},
	{"new extension", func(c wire.ChangeCounters) int64 { return c.TopNewExtension },
		func(t Thresholds) Signal { return t.NewExtension },
		"are new, under one extension their folders never had"},
	{"deleted", func(c wire.ChangeCounters) int64 { return c.Deleted },
		func(t Thresholds) Signal { return t.Deleted },
		"were deleted"},
}

// Judge decides on c given the machine's baseline: the counters of its
// recent backups that were not themselves suspicious (newest first; only
// the first t.History with a parent count).
func Judge(c wire.ChangeCounters, baseline []wire.ChangeCounters, t Thresholds) Verdict {
	var v Verdict
	if c.ParentFiles < max(1, t.MinParentFiles) {
		return v // nothing to compare with, or too few files to speak of shares
	}
	var hist []wire.ChangeCounters
	for _, b := range baseline {
		if len(hist) == t.History {
			break
		}
		if b.ParentFiles > 0 {
			hist = append(hist, b)
		}
	}
	for _, m := range marks {
		sig := m.sig(t)
		n := m.count(c)
		share := float64(n) / float64(c.ParentFiles)
		need := sig.Share
		for _, b := range hist {
			need = max(need, t.Headroom*float64(m.count(b))/float64(b.ParentFiles))
		}
		if n >= sig.Min && share >= need {
			v.Suspicious = true
			v.Reasons = append(v.Reasons, fmt.Sprintf("%d of %d files (%.0f%%) %s", n, c.ParentFiles, 100*share, m.says))
		}
	}
	return v
}
