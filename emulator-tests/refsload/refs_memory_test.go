// Package refsload measures the control plane's memory when agents register
// points whose pack lists are as large as a list may be (issue 10 row 3): a
// real coffer-functions process against Azurite, its peak RSS read from
// /proc/<pid>/status (VmHWM).
package refsload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/emulator-tests/proc"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

var emus ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emus.Main(m)) }

const (
	// rssBudget is the row's target for the whole process.
	rssBudget = 256 << 20
	machines  = 4 // each with its own maximum-size list
	perPoint  = 4 // registrations of each at once
	requests  = machines * perPoint
	point     = "00000000000000000000000000000000000000000000000000000000000000aa"
)

var listening = regexp.MustCompile(`coffer-functions listening on (http://\S+)`)

// Sixteen registrations at once of points whose lists are the largest
// allowed (about 1.5 million packs, none stored) keep coffer-functions
// under 256 MB: lists are streamed against the listing of data/, one check
// at a time per machine and four in all. Before, each request decoded its
// whole list (5.6 GB for 16).
func TestSixteenMaximumSizePackListsAtOnceStayUnder256MB(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/<pid>/status")
	}
	ondemand.SkipShort(t)
	emus.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "coffer-functions")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/coffer-backup/coffer/functions/cmd/coffer-functions").CombinedOutput(); err != nil {
		t.Fatalf("build coffer-functions: %v\n%s", err, out)
	}
	var env []string
	for k, v := range inproc.Env(emus.Azurite.ConnectionString(), emus.ServiceBus.ConnectionString()) {
		env = append(env, k+"="+v)
	}
	env = append(env, config.AuthMode+"=tokens", config.Port+"=", config.WebsiteAuthEnabled+"=")
	var url string
	log := filepath.Join(t.TempDir(), "coffer-functions.log")
	p, err := proc.Start(ctx, proc.Spec{Name: "coffer-functions", Path: bin, Args: []string{"--standalone=true", "--addr", "127.0.0.1:0"},
		Env: env, LogPath: log, Ready: func(line string) bool {
			if m := listening.FindStringSubmatch(line); m != nil {
				url = m[1]
				return true
			}
			return false
		}})
	if err != nil {
		t.Fatalf("start coffer-functions (log %s): %v", log, err)
	}
	defer p.Stop(10 * time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(log)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("end of the control plane's log:\n%s", b)
		}
	})

	admin := &cpclient.Client{BaseURL: url, Token: inproc.ContributorToken}
	var v wire.Vault
	if _, err := admin.Do(ctx, "POST", "/api/v1/vaults", wire.NewVault{Name: "refs-load"}, &v); err != nil {
		t.Fatal(err)
	}
	blobs, err := azblob.NewClientFromConnectionString(emus.Azurite.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var agents []*cpclient.Client
	size := int64(0)
	for i := range machines {
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
		g := &refsMemList{n: refsMemMaxPacks()}
		if _, err := blobs.UploadStream(ctx, reg.Container, packrefs.Name(point), g, nil); err != nil {
			t.Fatalf("upload the list of machine %d: %v", i, err)
		}
		size = g.written
		if _, err := blobs.UploadBuffer(ctx, reg.Container, layout.Point(point), []byte("sealed point"), nil); err != nil {
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
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := agents[i%machines].Do(ctx, "POST", "/api/v1/agent/points", wire.NewPoint{ID: point}, nil)
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

	t.Logf("%d registrations of %d-byte lists (%d packs each) over %d machines in %v; answers %v", requests, size, refsMemMaxPacks(), machines, wall.Round(time.Millisecond), answers)
	t.Logf("coffer-functions RSS: %d MiB at rest, peak %d MiB (VmHWM; sampled %d MiB), budget %d MiB",
		base.hwm>>20, after.hwm>>20, peakRSS>>20, rssBudget>>20)
	if after.hwm >= rssBudget {
		t.Errorf("peak RSS %d MiB, over the %d MiB budget", after.hwm>>20, rssBudget>>20)
	}
	// Each check runs to the end and counts every pack as missing, unless
	// it waited its turn longer than the control plane queues one (a
	// minute): then it is told to retry (503). A slow disk may do that to
	// the last of a machine's four; anything else is wrong.
	full := answers["409 "+wire.CodePointIncomplete]
	if full < machines || full+answers["503 "+wire.CodeUnavailable] != requests {
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

// refsMemList writes a valid list of n sorted packs on the fly.
type refsMemList struct {
	n, i    int
	buf     []byte
	done    bool
	written int64
}

func (g *refsMemList) Read(b []byte) (int, error) {
	if g.buf == nil {
		g.buf = make([]byte, 0, 64<<10)
		g.buf = append(g.buf, `{"version":1,"point":"`+point+`","packs":[`...)
	}
	for len(g.buf) < cap(g.buf)-80 && !g.done {
		if g.i < g.n {
			if g.i > 0 {
				g.buf = append(g.buf, ',')
			}
			g.buf = fmt.Appendf(g.buf, `"%064x"`, g.i+1)
			g.i++
			continue
		}
		g.buf = append(g.buf, "]}"...)
		g.done = true
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(b, g.buf)
	g.buf = g.buf[:copy(g.buf, g.buf[n:])]
	g.written += int64(n)
	return n, nil
}
