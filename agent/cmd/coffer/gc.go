package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// smallHeapLimit is the memory the runtime may fill before a collection
// while what is live stays small. Every command that opens a repository
// has held Argon2id's 64 MiB already (agent/crypto), and the runtime keeps
// those pages for a while: a heap that stays within them costs little
// memory the command has not peaked at anyway. Collecting every 15% of a
// 20 MB live set instead ran dozens of collections in a no-change
// re-backup of `source`; within the limit it runs a few, for a seventh
// less time, at a peak 2-3 MiB higher. At 80 MiB the initial backup of
// `source` peaked at 93 MiB instead of 86; at 64 MiB the scavenger handed
// Argon2id's pages back only for the heap to fault them in again (1,400
// faults more on `office`, and slower).
//
// A memory limit with GOGC off is the runtime's own way to say "collect
// when the heap reaches this"; a large GOGC for a small live set was not:
// the runtime applies GOGC to the stacks it will scan next time, so a
// goroutine more could move the next collection tens of MB out.
const smallHeapLimit = 72 << 20

// smallLive is the live heap up to which the limit applies; above it
// collections follow the live set by a percentage again (see
// gcSettingsFor), so that a live set near the limit never collects over
// and over against it.
const smallLive = smallHeapLimit / 2

var gcTuning struct {
	sync.Mutex
	percent int  // the command's percentage, for a large live set
	armed   bool // a cleanup waits for the next collection
}

// setGCPercent sets how far the heap may grow past what is live before
// the next collection, unless GOGC is set.
func setGCPercent(p int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(p)
	}
}

// setBackupGC is setGCPercent for a backup, whose live set stays small
// on most trees: the heap may fill smallHeapLimit while what is live is
// under smallLive, and past it collections follow the live set by p,
// unless GOGC or GOMEMLIMIT is set. Backups churn through large buffers
// that die young; collecting often keeps the peak near a large live set,
// and the heap is mostly pointer-free byte slices, so a collection costs
// little. Restores keep their plain percentage: within the limit a
// restore of `large` peaked at 93 MiB instead of 83, with twice the page
// faults, and was no faster.
func setBackupGC(p int) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	gcTuning.Lock()
	defer gcTuning.Unlock()
	gcTuning.percent = p
	applyGCSettings(gcSettingsFor(liveHeap(), p))
	if !gcTuning.armed {
		gcTuning.armed = true
		armGCTuning()
	}
}

// armGCTuning runs retuneGC after the next collection, and again after
// each one: a cleanup runs once the object it watches is collected.
func armGCTuning() {
	runtime.AddCleanup(new([16]byte), func(struct{}) {
		retuneGC()
		armGCTuning()
	}, struct{}{})
}

func retuneGC() {
	gcTuning.Lock()
	defer gcTuning.Unlock()
	applyGCSettings(gcSettingsFor(liveHeap(), gcTuning.percent))
}

type gcSettings struct {
	percent int   // -1: off, the limit alone starts collections
	limit   int64 // bytes; math.MaxInt64 for none
}

// gcSettingsFor is the limit for a small live heap (before the first
// collection too). For a larger one it is a percentage: the command's, or
// more while what it allows stays under smallHeapLimit, so that the next
// collection comes when the heap reaches the larger of the two. With the
// command's alone, a live heap just over smallLive (a 1% re-backup of
// `source`: 40-45 MB) was collected every 6 MB of allocation, 25 times in
// 0.7 s.
func gcSettingsFor(live uint64, percent int) gcSettings {
	if live < smallLive {
		return gcSettings{percent: -1, limit: smallHeapLimit}
	}
	if live < smallHeapLimit {
		// Rounded down: the goal may fall short of the limit by a part
		// in a hundred, never pass it.
		percent = max(percent, int((smallHeapLimit-live)*100/live))
	}
	return gcSettings{percent: percent, limit: math.MaxInt64}
}

func applyGCSettings(s gcSettings) {
	// Raise the limit before turning GOGC off, and restore GOGC before
	// lifting the limit, so that the heap is never left without either.
	if s.percent < 0 {
		debug.SetMemoryLimit(s.limit)
		debug.SetGCPercent(s.percent)
		return
	}
	debug.SetGCPercent(s.percent)
	debug.SetMemoryLimit(s.limit)
}

// liveHeap is the heap the last collection found live; 0 before the first.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
