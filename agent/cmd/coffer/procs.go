package main

import (
	"os"
	"runtime"
	"sync"
)

// backupProcs returns the number of compress-and-encrypt workers a backup
// runs, one per processor Go was given, and gives the backup one processor
// more while it reads small files (archiver.Options.SmallReads).
//
// Why: a read that misses the page cache blocks its thread in the kernel
// while it holds a processor, and with one processor per core, compression
// ready to run waits until the runtime takes that processor back. Files of
// a few KiB are mostly such waits: with one processor more, `office`'s
// initial backup (100,000 files of 1-4 KiB among others) took 13.56 s
// instead of 14.62 (medians of 5, alternating, caches dropped, 2 cores).
// Large files are compression, and there the extra processor only slices
// the cores finer: `large`'s initial backup took 11.54 s instead of 10.89,
// with 2.4 s more CPU. A re-backup's unchanged files are lookups alone,
// the same waits without the read: its no-change re-backup of `source`
// took 0.51 s instead of 0.58, and of `office` 0.87 instead of 0.90
// (medians of 8, alternating). GOMAXPROCS in the environment is left as
// set.
var backupProcs = sync.OnceValue(func() int { return runtime.GOMAXPROCS(0) })

// smallReadProcs is archiver.Options.SmallReads for backupProcs.
func smallReadProcs(small bool) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	n := backupProcs()
	if small {
		n++
	}
	runtime.GOMAXPROCS(n)
}
