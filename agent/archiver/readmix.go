package archiver

import (
	"context"
	"sync/atomic"
	"time"
)

// smallReadAvg is the average of the bytes read per file examined lately
// under which the backup is taken to wait on the disk rather than the CPU:
// a file of a few KiB costs a lookup, an open and a read that miss the
// cache, and next to no compression; an unchanged file, which is not read,
// costs the lookup alone.
const smallReadAvg = 256 << 10

// readMixInterval is how often the mix of files read is looked at; a
// variable for tests.
var readMixInterval = 250 * time.Millisecond

// readMix counts the files examined and the bytes read from them, for
// Options.SmallReads.
type readMix struct {
	files, bytes atomic.Int64
}

func (m *readMix) note(size int64) {
	m.files.Add(1)
	m.bytes.Add(size)
}

// watchReadMix tells opts.SmallReads whether the files examined in each
// interval averaged under smallReadAvg read, when that changes, until ctx
// ends; then it says false if it last said true. An interval in which no
// file was examined changes nothing. A re-backup (one with a parent point)
// starts small: most of its files are usually unchanged, and its walk can
// be over before the first interval is.
func (a *archiver) watchReadMix(ctx context.Context, every time.Duration) {
	tell := a.opts.SmallReads
	small := a.opts.Parent != nil
	if small {
		tell(true)
	}
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
