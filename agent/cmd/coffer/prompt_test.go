//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pty is a pseudo-terminal opened by hand through /dev/ptmx: the test
// holds the master side, coffer gets the slave as its standard input and
// error, as on a user's terminal.
type pty struct {
	master, slave *os.File
	mu            sync.Mutex
	out           strings.Builder // everything coffer wrote to the terminal
	changed       chan struct{}
	drained       chan struct{} // closed once the master side reads EOF or EIO
}

func openPTY(t *testing.T) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	p := &pty{master: m, slave: s, changed: make(chan struct{}, 1), drained: make(chan struct{})}
	go func() {
		defer close(p.drained)
		buf := make([]byte, 4096)
		for {
			k, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:k])
			p.mu.Unlock()
			select {
			case p.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { s.Close(); m.Close() })
	return p
}

// drain waits, once coffer has exited, until everything it wrote has been
// read: with the last slave descriptor closed, the master reads what is
// left and then fails.
func (p *pty) drain(t *testing.T) {
	t.Helper()
	p.slave.Close()
	select {
	case <-p.drained:
	case <-time.After(time.Minute):
		t.Fatal("the terminal's output was never drained")
	}
}

func (p *pty) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the terminal has shown want n times in all.
func (p *pty) waitFor(t *testing.T, want string, n int) {
	t.Helper()
	deadline := time.After(time.Minute)
	for strings.Count(p.output(), want) < n {
		select {
		case <-p.changed:
		case <-deadline:
			t.Fatalf("the terminal never showed %q %d times; it shows %q", want, n, p.output())
		}
	}
}

// typeSecret types a line once coffer has turned echo off, so what is
// typed could only appear on the screen if coffer echoed it.
func (p *pty) typeSecret(t *testing.T, line string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		tio, err := unix.IoctlGetTermios(int(p.slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("coffer never turned the terminal's echo off")
		}
		time.Sleep(time.Millisecond) // polling the terminal's mode: no event tells when it changes
	}
	if _, err := p.master.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
}

// cofferOnTerminal starts coffer with the terminal as standard input and
// error, and neither COFFER_PASSPHRASE nor COFFER_NEW_PASSPHRASE set.
func cofferOnTerminal(t *testing.T, p *pty, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_PASSPHRASE=") && !strings.HasPrefix(kv, "COFFER_NEW_PASSPHRASE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runMain+"=1")
	cmd.Stdin, cmd.Stderr = p.slave, p.slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestPassphraseIsAskedOnATerminalWithoutEcho(t *testing.T) {
	const typed = "typed on a terminal, never shown"
	for _, tc := range []struct {
		name    string
		answers []string // typed at each prompt, in order
		prompts []string
		code    int
		created bool
	}{
		{"init confirmed", []string{typed, typed}, []string{"New passphrase: ", "Repeat new passphrase: "}, 0, true},
		{"init mistyped", []string{typed, typed + "!"}, []string{"New passphrase: ", "Repeat new passphrase: "}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			p := openPTY(t)
			cmd := cofferOnTerminal(t, p, "init", "--repo", repo)
			for i, a := range tc.answers {
				p.waitFor(t, tc.prompts[i], 1)
				p.typeSecret(t, a)
			}
			code := exitCode(t, cmd)
			p.drain(t)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; terminal: %q", code, tc.code, p.output())
			}
			if strings.Contains(p.output(), typed) {
				t.Fatalf("the passphrase was echoed: %q", p.output())
			}
			_, err := os.Stat(filepath.Join(repo, "config"))
			if created := err == nil; created != tc.created {
				t.Fatalf("repository created: %v, want %v; terminal: %q", created, tc.created, p.output())
			}
			if tc.created {
				if r := coffer(t, []string{"COFFER_PASSPHRASE=" + typed}, "points", "--repo", repo); r.code != 0 {
					t.Fatalf("the typed passphrase does not open the repository: %+v", r)
				}
			} else if !strings.Contains(p.output(), "differ") {
				t.Fatalf("a mistyped confirmation is not explained: %q", p.output())
			}
		})
	}
}

func TestPassphraseChangeOnATerminalAsksTheOldThenTheNewTwice(t *testing.T) {
	const newPass = "the new one, typed twice on a terminal"
	repo, _, _ := setup(t)
	p := openPTY(t)
	cmd := cofferOnTerminal(t, p, "passphrase", "change", "--repo", repo)
	p.waitFor(t, "Passphrase: ", 1)
	p.typeSecret(t, pass)
	p.waitFor(t, "New passphrase: ", 1)
	p.typeSecret(t, newPass)
	p.waitFor(t, "Repeat new passphrase: ", 1)
	p.typeSecret(t, newPass)
	code := exitCode(t, cmd)
	p.drain(t)
	if code != 0 {
		t.Fatalf("exit %d; terminal: %q", code, p.output())
	}
	if out := p.output(); strings.Contains(out, newPass) || strings.Contains(out, pass) {
		t.Fatalf("a passphrase was echoed: %q", out)
	}
	if r := coffer(t, []string{"COFFER_PASSPHRASE=" + newPass}, "points", "--repo", repo); r.code != 0 {
		t.Fatalf("the new passphrase does not open the repository: %+v", r)
	}
}

func TestNoPassphraseAndNoTerminalIsAUsageError(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	cmd := exec.Command(bin, "init", "--repo", repo)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_PASSPHRASE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runMain+"=1")
	out, _ := cmd.CombinedOutput() // standard input is /dev/null
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "COFFER_PASSPHRASE") {
		t.Fatalf("exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
}
