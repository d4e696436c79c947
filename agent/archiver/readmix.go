package archiver

import (
	"context"
	"sync/atomic"
	"time"
)

// smallReadAvg is the average size of the files read lately under which
// reading is taken to wait on the disk rather than the CPU: a file of a few
// KiB costs a lookup, an open and a read that miss the cache, and next to
// no compression.
const smallReadAvg = 256 << 10

// readMixInterval is how often the mix of files read is looked at; a
// variable for tests.
var readMixInterval = 250 * time.Millisecond

// readMix counts the files read and their bytes, for Options.SmallReads.
type readMix struct {
	files, bytes atomic.Int64
}

func (m *readMix) note(size int64) {
	m.files.Add(1)
	m.bytes.Add(size)
}

// watchReadMix tells opts.SmallReads whether the files read in each
// interval averaged under smallReadAvg, when that changes, until ctx ends;
// then it says false if it last said true. An interval in which no file
// was read changes nothing.
func (a *archiver) watchReadMix(ctx context.Context, every time.Duration) {
	tell := a.opts.SmallReads
	small := false
	defer func() {
		if small {
			tell(false)
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var files, bytes int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		f, b := a.mix.files.Load(), a.mix.bytes.Load()
		if df, db := f-files, b-bytes; df > 0 {
			if now := db/df < smallReadAvg; now != small {
				small = now
				tell(small)
			}
		}
		files, bytes = f, b
	}
}
