package jobsload_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/shared/api"
)

func TestZZProbe(t *testing.T) {
	ss := newInstances(t)
	for _, conc := range []int{200, 200} {
		var wg sync.WaitGroup
		start := time.Now()
		const per = 400
		var l latencies
		for g := range conc {
			wg.Go(func() {
				s := ss[g%len(ss)]
				m := fmt.Sprintf("p%d-%d", conc, g)
				for range per / conc {
					t0 := time.Now()
					if _, err := s.Create(t.Context(), "probe", m, "", api.JobBackup); err != nil {
						t.Error(err)
						return
					}
					l.add(time.Since(t0))
				}
			})
		}
		wg.Wait()
		w := time.Since(start)
		t.Logf("conc %d: %d creates in %v = %.0f/s p50 %v p95 %v max %v", conc, per/conc*conc, w, float64(per/conc*conc)/w.Seconds(), l.pct(.5), l.pct(.95), l.pct(1))
	}
	_ = jobs.MaxLimit
}
