package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/proc"
)

// The sample folder holds a few dozen files in several folders, the same
// every time, including an empty one.
func TestSampleFolderIsSmallAndTheSameEveryTime(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if n, err := makeSample(dir, sampleFiles); err != nil || n != sampleFiles {
			t.Fatalf("makeSample: %d %v", n, err)
		}
	}
	files, size, err := compareTrees(a, b)
	if err != nil || files != sampleFiles {
		t.Fatalf("two samples: %d files, %v", files, err)
	}
	if size < 10<<10 || size > 4<<20 {
		t.Errorf("the sample holds %d bytes; a demo wants small files", size)
	}
	if st, err := os.Stat(filepath.Join(a, "Scans", "empty.txt")); err != nil || st.Size() != 0 {
		t.Errorf("no empty file: %v", err)
	}
	what, err := changeSample(b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(what, "edited") || !strings.Contains(what, "deleted") {
		t.Errorf("changeSample said %q", what)
	}
	files, _, err = compareTrees(b, b)
	if err != nil || files != sampleFiles+1 {
		t.Errorf("after the change: %d files, %v; want %d", files, err, sampleFiles+1)
	}
	if _, _, err := compareTrees(a, b); err == nil {
		t.Error("compareTrees found no difference after the change")
	}
}

// compareTrees finds one changed byte, a missing file, an extra file and a
// file that became a folder.
func TestCompareTreesFindsEveryDifference(t *testing.T) {
	for name, change := range map[string]func(dir string) error{
		"differs": func(dir string) error {
			p := filepath.Join(dir, "Finance", "notes-00.txt")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 1
			return os.WriteFile(p, b, 0o644)
		},
		"is missing":          func(dir string) error { return os.Remove(filepath.Join(dir, "Scans", "empty.txt")) },
		"should not be there": func(dir string) error { return os.WriteFile(filepath.Join(dir, "HR", "extra.txt"), nil, 0o644) },
		"is a dir, not a file": func(dir string) error {
			p := filepath.Join(dir, "Scans", "empty.txt")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Mkdir(p, 0o755)
		},
	} {
		t.Run(name, func(t *testing.T) {
			want, got := t.TempDir(), t.TempDir()
			makeSample(want, 12)
			makeSample(got, 12)
			if err := change(got); err != nil {
				t.Fatal(err)
			}
			_, _, err := compareTrees(want, got)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("compareTrees = %v, want an error saying %q", err, name)
			}
		})
	}
}

func TestRestoredPathFollowsTheArchiversNames(t *testing.T) {
	if runtime.GOOS == "windows" {
		if got := restoredPath(`D:\r`, `C:\Data\share`); got != `D:\r\C\Data\share` {
			t.Errorf("restoredPath = %s", got)
		}
		return
	}
	if got := restoredPath("/tmp/r", "/srv/office/share"); got != "/tmp/r/srv/office/share" {
		t.Errorf("restoredPath = %s", got)
	}
}

// make demo, end to end: devstack, coffer and coffer-functions built into
// one folder, `devstack demo` finds the other two beside itself, tells the
// whole story, exits 0 and leaves no process or port behind.
func TestWholeDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs the whole story")
	}
	bin := t.TempDir()
	for name, pkg := range map[string]string{
		"devstack":         ".",
		"coffer":           "github.com/coffer-backup/coffer/agent/cmd/coffer",
		"coffer-functions": "github.com/coffer-backup/coffer/functions/cmd/coffer-functions",
	} {
		if out, err := exec.Command("go", "build", "-o", exe(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	dir := filepath.Join(t.TempDir(), "dev")
	start := time.Now()
	cmd := exec.Command(exe(bin, "devstack"), "--dir", dir, "demo")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("demo took %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("devstack demo: %v", err)
	}
	steps := defaultSteps()
	for i, st := range steps {
		want := "==> " + strconv.Itoa(i+1) + "/" + strconv.Itoa(len(steps)) + " " + st.title + "\n"
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks step %q", want)
		}
	}
	for _, want := range []string{
		"coffer-functions --standalone (pid",
		"Created vault branch-offices", "alerts are emailed to ops@branch.example",
		"Registered branch-01", "escrowed in Key Vault as secret",
		"Backed up 40 files", "now has 2 recovery points",
		"byte for byte: identical",
		"`coffer admin jobs --status failed` shows it", `"[Coffer] CRITICAL: Backup failed on branch-01 (vault branch-offices)"`,
		"lists it as deleted", "Undeleted it: branch-01 is stopped", "with its 2 recovery points back",
		"15 days ahead", "ran PurgeSoftDeleted on a host-mode coffer-functions", "are gone for good",
		"The vault portal is at http://127.0.0.1:",
		"no port is left open", "Demo finished: all 11 steps passed.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "FAILED") {
		t.Error("a step failed")
	}
	// Every process it names as stopped is gone.
	line := regexp.MustCompile(`stopped (.*); no port is left open`).FindStringSubmatch(out.String())
	if line == nil {
		t.Fatal("no list of stopped processes")
	}
	pids := regexp.MustCompile(`([\w-]+) \(pid (\d+)\)`).FindAllStringSubmatch(line[1], -1)
	names := map[string]bool{}
	for _, m := range pids {
		names[m[1]] = true
		pid, _ := strconv.Atoi(m[2])
		if proc.Alive(pid) {
			t.Errorf("%s (pid %d) still runs", m[1], pid)
		}
	}
	for _, want := range []string{"azurite", "servicebus", "coffer-functions", "coffer-functions-host"} {
		if !names[want] {
			t.Errorf("%s is not among the stopped processes: %s", want, line[1])
		}
	}
	// With Chromium the portal's overview and machine page are saved as
	// PNGs beside the transcript, and the browser is among the processes
	// checked gone; without it the step says so in one line.
	if findChromium() != "" {
		for _, f := range []string{"portal-overview.png", "portal-machine.png"} {
			b, err := os.ReadFile(filepath.Join(dir, "demo", f))
			if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("screenshot %s: %d bytes, %v", f, len(b), err)
			}
		}
		if !names["chromium"] {
			t.Errorf("the browser is not among the stopped processes: %s", line[1])
		}
	} else if !strings.Contains(out.String(), "Chromium is not installed") {
		t.Error("without Chromium the demo does not say why it saved no screenshots")
	}
	transcript, err := os.ReadFile(filepath.Join(dir, "demo", transcriptFile))
	if err != nil || !strings.Contains(string(transcript), "$ coffer restore latest --target") {
		t.Errorf("transcript: %v\n%s", err, transcript)
	}
}

// Without Chromium the portal step names the portal's address, says in one
// line that it saves no screenshots, and passes.
func TestPortalStepWithoutChromiumSaysSoAndPasses(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	d := &demo{cpURL: "http://127.0.0.1:7071", Out: t.TempDir()}
	msg, err := stepPortal(t.Context(), d)
	if err != nil {
		t.Fatalf("the portal step failed without Chromium: %v", err)
	}
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "Chromium is not installed") || !strings.Contains(msg, "http://127.0.0.1:7071/portal/") {
		t.Errorf("the portal step said %q", msg)
	}
	if shots, _ := filepath.Glob(filepath.Join(d.Out, "*.png")); len(shots) > 0 {
		t.Errorf("screenshots without a browser: %v", shots)
	}
}
