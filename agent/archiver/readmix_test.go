package archiver

import (
	"context"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/repository"
)

// TestWatchReadMixFollowsTheFilesRead feeds the counters as readers would
// and waits for each verdict: small files say true, large ones false, and
// the end of the backup takes back a true.
func TestWatchReadMixFollowsTheFilesRead(t *testing.T) {
	calls := make(chan bool, 16)
	a := &archiver{opts: Options{SmallReads: func(small bool) { calls <- small }}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { a.watchReadMix(ctx, time.Millisecond); close(done) }()
	expect := expectMix(t, a, calls)
	expect(3<<10, true)
	expect(4<<20, false)
	expect(10<<10, true)
	cancel()
	<-done
	expectTakenBack(t, calls)
}

// TestARebackupStartsWithSmallReads: a backup with a parent point says
// true before any file is examined, and unchanged files, which are not
// read, keep it so.
func TestARebackupStartsWithSmallReads(t *testing.T) {
	calls := make(chan bool, 16)
	a := &archiver{opts: Options{Parent: &repository.Point{}, SmallReads: func(small bool) { calls <- small }}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { a.watchReadMix(ctx, time.Millisecond); close(done) }()
	select {
	case got := <-calls:
		if !got {
			t.Fatal("a re-backup started with false")
		}
	case <-t.Context().Done():
		t.Fatal("a re-backup was not told true at its start")
	}
	expect := expectMix(t, a, calls)
	expect(4<<20, false)
	expect(0, true) // unchanged files
	cancel()
	<-done
	expectTakenBack(t, calls)
}

// expectMix returns expect(size, want), which keeps examining files of
// which size bytes are read until the watcher says want.
func expectMix(t *testing.T, a *archiver, calls <-chan bool) func(int64, bool) {
	return func(size int64, want bool) {
		t.Helper()
		for {
			a.mix.note(size)
			select {
			case got := <-calls:
				if got != want {
					t.Fatalf("files of %d bytes: told %v, want %v", size, got, want)
				}
				return
			case <-t.Context().Done():
				t.Fatal(t.Context().Err())
			case <-time.After(time.Millisecond):
			}
		}
	}
}

// expectTakenBack checks that the stopped watcher's last word took back
// its true.
func expectTakenBack(t *testing.T, calls <-chan bool) {
	t.Helper()
	select {
	case got := <-calls:
		if got {
			t.Fatal("told true as the backup ended")
		}
	default:
		t.Fatal("a true was not taken back when the backup ended")
	}
}
