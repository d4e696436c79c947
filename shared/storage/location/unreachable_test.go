package location_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/storage/azureblob"
	"github.com/coffer-backup/coffer/shared/storage/retry"
)

// countingTransport counts the HTTP tries the SDK makes.
type countingTransport struct{ tries atomic.Int32 }

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.tries.Add(1)
	return http.DefaultTransport.RoundTrip(req)
}

// TestUnreachableStorageFailsWithinFifteenSeconds points a container URL at
// a closed loopback port, wrapped as the CLI wraps it (retry.Policy{} with
// its defaults), and adds up the waits through an injected Sleep: the SDK
// must not retry the refused connection on its own (each wrapper attempt
// is one try), the waits must add up to less than 15 s, and the error must
// say in one message that the storage cannot be reached.
func TestUnreachableStorageFailsWithinFifteenSeconds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: every connection is refused

	tr := &countingTransport{}
	be, err := azureblob.New("http://"+addr+"/devstoreaccount1/backups?"+sasQuery, azureblob.Options{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	var waited time.Duration
	p := retry.Policy{Sleep: func(ctx context.Context, d time.Duration) error { waited += d; return ctx.Err() }}
	_, err = retry.New(be, p).Stat(t.Context(), "config")
	if err == nil {
		t.Fatal("Stat on a closed port succeeded")
	}
	if got, want := int(tr.tries.Load()), 5; got != want {
		t.Errorf("%d HTTP tries, want %d: one per wrapper attempt, none stacked by the SDK", got, want)
	}
	if waited >= 15*time.Second {
		t.Errorf("waited %s in retries before failing, want under 15s", waited)
	}
	msg := err.Error()
	if !strings.Contains(msg, "cannot reach the storage at http://"+addr) || !strings.Contains(msg, "firewall") || strings.Contains(msg, "SECRETSIG") {
		t.Errorf("error %q: want one message naming the storage (without its SAS) and what to check", msg)
	}
}
