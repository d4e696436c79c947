package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCSettingsFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name string
		live uint64
		want gcSettings
	}{
		{"before the first collection: the limit", 0, gcSettings{-1, smallHeapLimit}},
		{"small live heap: the limit", 20 * mib, gcSettings{-1, smallHeapLimit}},
		{"live heap at the switch: a percentage that reaches the limit", smallLive, gcSettings{100, math.MaxInt64}},
		{"between: still up to the limit", 48 * mib, gcSettings{50, math.MaxInt64}},
		{"near the limit: the command's percentage once it allows more", 66 * mib, gcSettings{15, math.MaxInt64}},
		{"at the limit", smallHeapLimit, gcSettings{15, math.MaxInt64}},
		{"very large live heap", 500 * mib, gcSettings{15, math.MaxInt64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gcSettingsFor(tt.live, 15); got != tt.want {
				t.Fatalf("gcSettingsFor(%d, 15) = %+v, want %+v", tt.live, got, tt.want)
			}
		})
	}
}

// After each collection the settings follow what is live: the limit while
// the live set is small, a percentage reaching it above that, the
// command's percentage once the live set is large, and back.
func TestGCSettingsFollowTheLiveHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	read := func() (int, int64) {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
	}
	waitFor := func(what string, ok func(p int, l int64) bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			runtime.GC()
			p, l := read()
			if ok(p, l) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GOGC %d, limit %d", what, p, l)
			}
			runtime.Gosched()
		}
	}
	setBackupGC(15)
	waitFor("small live heap", func(p int, l int64) bool { return l == smallHeapLimit })

	mid := make([]byte, smallLive+(8<<20))
	for i := range mid {
		mid[i] = 1
	}
	waitFor("live heap over smallLive", func(p int, l int64) bool { return p > 15 && l == math.MaxInt64 })
	big := make([]byte, smallHeapLimit)
	for i := range big {
		big[i] = 1
	}
	waitFor("large live heap", func(p int, l int64) bool { return p == 15 && l == math.MaxInt64 })
	runtime.KeepAlive(mid)
	runtime.KeepAlive(big)
	mid, big = nil, nil
	waitFor("small again", func(p int, l int64) bool { return l == smallHeapLimit })
}
