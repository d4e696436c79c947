package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name    string
		m       gcMetrics
		percent int
		want    int
	}{
		{"before the first collection", gcMetrics{}, 15, 15},
		{"small live heap: the next collection at the floor", gcMetrics{live: 10 * mib, goal: 12 * mib, percent: 20}, 15, (48 - 10) * 100 / 10},
		{"stacks and globals count as scanned", gcMetrics{live: 10 * mib, goal: 14 * mib, percent: 20}, 15, (48 - 10) * 100 / 20},
		{"past the floor: the set percentage", gcMetrics{live: 60 * mib, goal: 69 * mib, percent: 15}, 15, 15},
		{"just reaching the floor with the set percentage", gcMetrics{live: 42 * mib, goal: 48 * mib, percent: 15}, 15, 15},
		{"GC off: left to the set percentage", gcMetrics{live: 10 * mib, goal: 0, percent: -1}, 25, 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gcPercentFor(tt.m, tt.percent, 48*mib); got != tt.want {
				t.Fatalf("gcPercentFor(%+v, %d) = %d, want %d", tt.m, tt.percent, got, tt.want)
			}
		})
	}
}

// After each collection the percentage is set again from what is live: a
// small heap may grow to the floor before the next one.
func TestSetGCPercentRetunesAfterEachCollection(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	setGCPercent(15)
	deadline := time.Now().Add(time.Minute)
	for {
		runtime.GC()
		m := readGCMetrics()
		// The test binary's live heap is a few MiB, far below the floor.
		if m.percent > 15 && m.goal >= heapFloor*9/10 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after collections the percentage is %d and the next collection at %d bytes; want it near the %d-byte floor", m.percent, m.goal, heapFloor)
		}
		runtime.Gosched()
	}
}
