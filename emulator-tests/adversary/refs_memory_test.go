package adversary

// Attack 3: an agent uploads the largest pack list allowed and registers
// it many times at once, to make the control plane run out of memory.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/packrefs/packrefstest"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

const (
	// refsMemBudget is the row's target for the whole process.
	refsMemBudget   = 256 << 20
	refsMemMachines = 4 // each with its own maximum-size list
	refsMemPerPoint = 4 // registrations of each at once
	refsMemRequests = refsMemMachines * refsMemPerPoint
	refsMemPoint    = "00000000000000000000000000000000000000000000000000000000000000aa"
)

// Sixteen registrations at once of points whose lists are the largest
// allowed (about 1.5 million packs, none stored) keep coffer-functions
// under 256 MB: lists are streamed against the listing of data/, one check
// at a time per machine and four in all. Before, each request decoded its
// whole list (5.6 GB for 16).
func TestSixteenMaximumSizePackListsAtOnceStayUnder256MB(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/<pid>/status")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	// A control plane of its own, so its peak memory is this attack's.
	cp, err := fx.startControlPlane(ctx, "refs-memory", true)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.stop()
	p, url := cp.p, cp.url
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(fx.dir, "refs-memory.log"))
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("end of the control plane's log:\n%s", b)
		}
	})

	admin := cp.admin()
	var v wire.Vault
	if _, err := admin.Do(ctx, "POST", "/api/v1/vaults", wire.NewVault{Name: "refs-memory"}, &v); err != nil {
		t.Fatal(err)
	}
	blobs, err := azblob.NewClientFromConnectionString(fx.st.Azurite.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var agents []*cpclient.Client
	size := int64(0)
	for i := range refsMemMachines {
		var cr wire.Credentials
		if _, err := admin.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/credentials", nil, &cr); err != nil {
			t.Fatal(err)
		}
		pub, priv, err := reqsign.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		var reg wire.Registration
		if _, err := (&cpclient.Client{BaseURL: url}).Do(ctx, "POST", "/api/v1/register", wire.Register{VaultID: v.ID, CredentialID: cr.CredentialID,
			Secret: cr.Secret, MachineName: fmt.Sprintf("branch-%02d", i), PublicKey: reqsign.EncodePublicKey(pub), OS: "linux"}, &reg); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, &cpclient.Client{BaseURL: url, MachineID: reg.MachineID, Key: priv, HTTP: &http.Client{Timeout: 5 * time.Minute}})
		// Written with the account key here; an agent writes the same
		// through its create-only SAS.
		g := &packrefstest.Generated{Point: refsMemPoint, N: refsMemMaxPacks()}
		if _, err := blobs.UploadStream(ctx, reg.Container, packrefs.Name(refsMemPoint), g, nil); err != nil {
			t.Fatalf("upload the list of machine %d: %v", i, err)
		}
		size = g.Written
		if _, err := blobs.UploadBuffer(ctx, reg.Container, layout.Point(refsMemPoint), []byte("sealed point"), nil); err != nil {
			t.Fatalf("upload the point of machine %d: %v", i, err)
		}
	}
	if size > packrefs.MaxSize || size < packrefs.MaxSize-200 {
		t.Fatalf("the list is %d bytes; the test needs one of nearly %d", size, packrefs.MaxSize)
	}
	base := refsMemStatus(t, p.PID())

	// Peak RSS while the registrations run, sampled for the log; VmHWM is
	// the kernel's own record of the peak.
	stop := make(chan struct{})
	var peakRSS int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if s, err := refsMemRead(p.PID()); err == nil && s.rss > peakRSS {
				peakRSS = s.rss
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for i := range refsMemRequests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := agents[i%refsMemMachines].Do(ctx, "POST", "/api/v1/agent/points", wire.NewPoint{ID: refsMemPoint}, nil)
			var se *cpclient.StatusError
			key := "ok"
			switch {
			case errors.As(err, &se):
				key = fmt.Sprintf("%d %s", se.Status, se.Body.Code)
				if se.Body.Code == wire.CodePointIncomplete && !strings.Contains(se.Body.Message, strconv.Itoa(refsMemMaxPacks())) {
					t.Errorf("point_incomplete without the count of missing packs: %s", se.Body.Message)
				}
			case err != nil:
				key = err.Error()
			}
			mu.Lock()
			answers[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	close(stop)
	sampler.Wait()
	after := refsMemStatus(t, p.PID())

	t.Logf("%d registrations of %d-byte lists (%d packs each) over %d machines in %v; answers %v", refsMemRequests, size, refsMemMaxPacks(), refsMemMachines, wall.Round(time.Millisecond), answers)
	t.Logf("coffer-functions RSS: %d MiB at rest, peak %d MiB (VmHWM; sampled %d MiB), budget %d MiB",
		base.hwm>>20, after.hwm>>20, peakRSS>>20, refsMemBudget>>20)
	if after.hwm >= refsMemBudget {
		t.Errorf("peak RSS %d MiB, over the %d MiB budget", after.hwm>>20, refsMemBudget>>20)
	}
	// Each check runs to the end and counts every pack as missing, unless
	// it waited its turn longer than the control plane queues one (a
	// minute): then it is told to retry (503). A slow disk may do that to
	// the last of a machine's four; anything else is wrong.
	full := answers["409 "+wire.CodePointIncomplete]
	if full < refsMemMachines || full+answers["503 "+wire.CodeUnavailable] != refsMemRequests {
		t.Errorf("answers %v, want 409 %s (or 503 %s after a minute's wait), at least one per machine", answers, wire.CodePointIncomplete, wire.CodeUnavailable)
	}
}

func refsMemMaxPacks() int { return (packrefs.MaxSize - 200) / 67 }

type refsMemStat struct{ rss, hwm int64 }

func refsMemStatus(t *testing.T, pid int) refsMemStat {
	t.Helper()
	s, err := refsMemRead(pid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// refsMemRead reads VmRSS and VmHWM (the peak) of a process, in bytes.
func refsMemRead(pid int) (refsMemStat, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return refsMemStat{}, err
	}
	defer f.Close()
	var s refsMemStat
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rss = n << 10
		case "VmHWM":
			s.hwm = n << 10
		}
	}
	if s.hwm == 0 {
		return s, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return s, sc.Err()
}
