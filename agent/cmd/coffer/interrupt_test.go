//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// firstPackStored waits until the backup has uploaded a pack: a file under
// data/ that is not a temp file still being written.
func firstPackStored(t *testing.T, repo string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(5 * time.Millisecond) // no event says a file appeared; poll the condition
	defer tick.Stop()
	for {
		found := false
		filepath.WalkDir(filepath.Join(repo, "data"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".tmp-") {
				found = true
				return fs.SkipAll
			}
			return nil
		})
		if found {
			return
		}
		select {
		case <-exited:
			t.Fatal("the backup ended before its first pack was stored")
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatal("no pack was stored within two minutes")
		}
	}
}

var interruptedLine = regexp.MustCompile(`^interrupted: [0-9]+\.[0-9] MiB already stored will be reused by the next backup$`)

// TestCtrlCSaysWhatIsKeptAndExits130 interrupts a real backup with SIGINT,
// as Ctrl-C does, once it has stored something.
func TestCtrlCSaysWhatIsKeptAndExits130(t *testing.T) {
	repo, src, cache := setup(t)
	// Incompressible files, several packs' worth, so the backup is still
	// running when its first pack lands.
	rng := rand.New(rand.NewChaCha8([32]byte{13}))
	const files, size = 40, 2 << 20
	buf := make([]byte, size)
	for i := range files {
		for j := 0; j < size; j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("big-%02d.bin", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "backup", "--repo", repo, "--cache-dir", cache, src)
	cmd.Env = append(os.Environ(), runMain+"=1", "COFFER_PASSPHRASE="+pass)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	firstPackStored(t, repo, exited)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-exited
	code := 0
	if ee, ok := waitErr.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != 130 || len(lines) != 1 || !interruptedLine.MatchString(lines[0]) || stdout.Len() != 0 {
		t.Fatalf("after Ctrl-C: exit %d, stdout %q, stderr %q; want exit 130 and one line like %q",
			code, stdout.String(), stderr.String(), "interrupted: 16.0 MiB already stored will be reused by the next backup")
	}
	if lines[0] == "interrupted: 0.0 MiB already stored will be reused by the next backup" {
		t.Fatalf("a pack was stored before the interruption, yet: %q", lines[0])
	}

	t.Log(lines[0])

	// The next backup reuses what was stored: it adds less than it reads.
	r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, "--json", src)
	if r.code != 0 {
		t.Fatalf("backup after the interruption: %+v", r)
	}
	var sum struct{ BytesRead, BytesNew int64 }
	if err := json.Unmarshal([]byte(r.out), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.BytesNew >= sum.BytesRead {
		t.Fatalf("the next backup stored everything again (%d new of %d read)", sum.BytesNew, sum.BytesRead)
	}
	if r := coffer(t, nil, "check", "--repo", repo, "--read-data"); r.code != 0 {
		t.Fatalf("check after the interruption: %+v", r)
	}
}
