package adversary

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// MaxPoints is MARS's limit of recovery points per machine, which Coffer keeps.
const MaxPoints = 9_999

// Attack 7: a machine registers 10,050 points, each with a valid (empty)
// pack list, 8 at a time. On the old code every one was accepted and
// listing the machine's points became slow. The control plane accepts
// 9,999, then refuses each further point with a clear error, also when the
// points arrive concurrently.
func TestPointFloodStopsAtTheLimit(t *testing.T) {
	ctx := t.Context()
	m, err := fx.register(ctx, fx.vault, "flood")
	if err != nil {
		t.Fatal(err)
	}
	m.src = fx.victim.src
	if err := fx.assignLongPolicy(ctx, m); err != nil {
		t.Fatal(err)
	}
	const total = MaxPoints + 51
	ids := make([]string, total)
	for i := range ids {
		ids[i] = fmt.Sprintf("%064x", i+1)
	}
	g := m.sas(t)
	c, err := container.NewClientWithNoCredential(g.ContainerURL+"?"+g.SAS, nil)
	if err != nil {
		t.Fatal(err)
	}
	agent := m.agent(fx.cp)
	var (
		accepted, refused atomic.Int64
		mu                sync.Mutex
		refusal           error
		unexpected        []string
	)
	work := make(chan string)
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for id := range work {
				refs := fmt.Appendf(nil, `{"version":1,"point":%q,"packs":[]}`, id)
				if _, err := c.NewBlockBlobClient("refs/"+id).UploadBuffer(ctx, refs, nil); err != nil {
					mu.Lock()
					unexpected = append(unexpected, fmt.Sprintf("upload refs/%s: %v", id[56:], err))
					mu.Unlock()
					continue
				}
				// Registration also needs the point object (refs/ alone is
				// what a killed backup leaves).
				if _, err := c.NewBlockBlobClient("points/"+id).UploadBuffer(ctx, []byte("sealed point"), nil); err != nil {
					mu.Lock()
					unexpected = append(unexpected, fmt.Sprintf("upload points/%s: %v", id[56:], err))
					mu.Unlock()
					continue
				}
				_, err := agent.Do(ctx, "POST", wire.Version+"/agent/points", wire.NewPoint{ID: id}, nil)
				switch {
				case err == nil:
					accepted.Add(1)
				case status(err) >= 400 && status(err) < 500 && cpclient.Code(err) != wire.CodeStaleRequest:
					refused.Add(1)
					mu.Lock()
					refusal = err
					mu.Unlock()
				default:
					mu.Lock()
					unexpected = append(unexpected, fmt.Sprintf("point …%s: %v", id[56:], err))
					mu.Unlock()
				}
			}
		})
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	t.Logf("%d points offered in %s: %d accepted, %d refused", total, time.Since(start).Round(time.Second), accepted.Load(), refused.Load())
	if len(unexpected) > 0 {
		t.Errorf("%d requests failed otherwise than by a refusal; first: %s\nthe control plane logged:\n%s",
			len(unexpected), unexpected[0], serverErrors(3))
	}
	if accepted.Load() != MaxPoints {
		t.Errorf("%d points accepted, want exactly %d", accepted.Load(), MaxPoints)
	}
	if refusal == nil || !strings.Contains(strings.ReplaceAll(refusal.Error(), ",", ""), "9999") {
		t.Errorf("the refusal does not name the limit of 9,999 points: %v", refusal)
	}
	start = time.Now()
	listed := points(t, fx.reader, fx.vault.ID, m.id, false)
	t.Logf("listing %d points took %s", len(listed), time.Since(start).Round(time.Millisecond))
	if len(listed) != MaxPoints {
		t.Errorf("the machine lists %d points, want %d", len(listed), MaxPoints)
	}
}
