package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapFloor is the heap a command may reach before collections follow
// the live set closely. Every command that opens a repository has held
// Argon2id's 64 MiB already (agent/crypto), and the runtime keeps those
// pages for a while: a heap that stays within them costs little memory
// the command has not peaked at anyway. Below it, collecting every 15% of
// a 20 MB live set ran dozens of collections in a no-change re-backup of
// `source`; with the floor it ran a few, for 0.2 s less (a seventh) and a
// peak 2 MiB higher (48 MiB; 64 MiB added 3 MiB and saved no more).
const heapFloor = 48 << 20

var gcTuning struct {
	sync.Mutex
	percent int  // the set percentage, above the floor
	armed   bool // a cleanup waits for the next collection
}

// setGCPercent sets how far the heap may grow past what is live before
// the next collection, once the heap is past heapFloor, unless GOGC is
// set. Backups churn through large buffers that die young; collecting
// more often keeps the peak near the live set, and the heap is mostly
// pointer-free byte slices, so a collection costs little.
func setGCPercent(p int) {
	if os.Getenv("GOGC") != "" {
		return
	}
	gcTuning.Lock()
	defer gcTuning.Unlock()
	gcTuning.percent = p
	debug.SetGCPercent(gcPercentFor(readGCMetrics(), p, heapFloor))
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
	debug.SetGCPercent(gcPercentFor(readGCMetrics(), gcTuning.percent, heapFloor))
}

// gcPercentFor is the percentage that puts the next collection at the
// live heap plus percent, or at floor if that is further. The runtime
// grows the heap past the live set by the percentage of what it scans
// (the live heap, goroutine stacks and globals), which the current goal
// and percentage give.
func gcPercentFor(m gcMetrics, percent int, floor uint64) int {
	if m.live == 0 || m.percent <= 0 || m.goal <= m.live {
		return percent
	}
	scanned := (m.goal - m.live) * 100 / uint64(m.percent)
	if scanned == 0 || m.live+scanned*uint64(percent)/100 >= floor {
		return percent
	}
	return int((floor - m.live) * 100 / scanned)
}

// gcMetrics is what the last collection found live, and the heap size at
// which the next starts under the current percentage.
type gcMetrics struct {
	live, goal uint64
	percent    int
}

func readGCMetrics() gcMetrics {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/goal:bytes"}, {Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return gcMetrics{live: v(0), goal: v(1), percent: int(v(2))}
}
