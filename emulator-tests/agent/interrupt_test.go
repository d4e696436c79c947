package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/coffer-backup/coffer/emulator-tests/stack"
)

// Ctrl-C during a backup through the vault: one line saying what is kept,
// exit 130, no internal error, and the vault's job ends as cancelled. The
// upload is held to 8 MiB/s so the backup is still running once its first
// pack is in the container, which the --json status stream says.
func TestCtrlCDuringAVaultBackupSaysWhatIsKept(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-ctrl-c")
	src := mkdir(t, filepath.Join(t.TempDir(), "data"))
	rng := rand.New(rand.NewChaCha8([32]byte{130}))
	buf := make([]byte, 4<<20)
	for i := range 20 { // 80 MiB, incompressible
		for j := 0; j < len(buf); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("video-%02d.bin", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.assignPolicy(m, src)

	cmd := exec.Command(coffer, "backup", "--json", "--limit-upload", "8192", "--config-dir", m.Dir)
	cmd.Env = stack.AgentEnv(m.w.env, m.Dir)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read the status stream until a pack is uploaded, then press Ctrl-C;
	// keep every other line for the checks below.
	var rest []string
	lines := bufio.NewScanner(stderr)
	signalled := false
	for lines.Scan() {
		line := lines.Text()
		var st struct {
			MessageType   string `json:"messageType"`
			BytesUploaded int64  `json:"bytesUploaded"`
		}
		if json.Unmarshal([]byte(line), &st) == nil && st.MessageType == "status" {
			if !signalled && st.BytesUploaded > 0 {
				if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
				signalled = true
			}
			continue
		}
		rest = append(rest, line)
	}
	err = cmd.Wait()
	if !signalled {
		t.Fatalf("the backup ended (%v) before a pack was uploaded: %q", err, rest)
	}
	code := cmd.ProcessState.ExitCode()
	kept := regexp.MustCompile(`^interrupted: [0-9]+\.[0-9] MiB already stored will be reused by the next backup$`)
	if code != 130 || len(rest) != 1 || !kept.MatchString(rest[0]) || stdout.Len() != 0 {
		t.Fatalf("after Ctrl-C: exit %d, stdout %q, other stderr lines %q; want 130 and one interrupted line", code, stdout.String(), rest)
	}
	out, errOut, err := m.coffer("jobs", "--json")
	if err != nil || !strings.Contains(out, `"cancelled"`) {
		t.Fatalf("the vault's job is not cancelled: %v %s %s", err, out, errOut)
	}
	if out, errOut, err := m.coffer("backup", "--json"); err != nil {
		t.Fatalf("backup after the interruption: %v\n%s%s", err, out, errOut)
	}
}
