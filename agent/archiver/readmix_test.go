package archiver

import (
	"context"
	"testing"
	"time"
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
	// expect keeps reading files of size until the watcher says want.
	expect := func(size int64, want bool) {
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
	expect(3<<10, true)
	expect(4<<20, false)
	expect(10<<10, true)
	cancel()
	<-done
	select {
	case got := <-calls:
		if got {
			t.Fatal("told true as the backup ended")
		}
	default:
		t.Fatal("a true was not taken back when the backup ended")
	}
}
