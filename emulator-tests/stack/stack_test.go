package stack

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStackRunsEveryEmulatorAndStopLeavesNothing(t *testing.T) {
	fixed := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	s, err := Start(t.Context(), Options{MailPage: true, Now: func() time.Time { return fixed }})
	if err != nil {
		t.Fatal(err)
	}
	pids, addrs, dir := s.PIDs(), s.Addrs(), s.StateDir
	t.Cleanup(func() { s.Stop() })

	env := s.Env()
	for _, k := range []string{EnvStorage, EnvStorageCoffer, EnvServiceBus, EnvKeyVault, EnvSSLCertFile, EnvSMTPHost, EnvSMTPPort, EnvMailPage} {
		if env[k] == "" {
			t.Errorf("%s is empty", k)
		}
	}
	if !strings.Contains(env[EnvStorage], "BlobEndpoint=http://127.0.0.1:") || !strings.Contains(env[EnvServiceBus], "UseDevelopmentEmulator=true") {
		t.Errorf("connection strings: %q, %q", env[EnvStorage], env[EnvServiceBus])
	}
	if pem, err := os.ReadFile(s.CACertPath); err != nil || !strings.Contains(string(pem), "BEGIN CERTIFICATE") {
		t.Errorf("CA certificate at %s: %v", s.CACertPath, err)
	}
	for _, name := range []string{"blob", "queue", "table", "servicebus", "keyvault", "smtp", "mailpage"} {
		if addrs[name] == "" {
			t.Errorf("no address for %s in %v", name, addrs)
		}
	}
	if len(pids) != 2 {
		t.Errorf("pids = %v, want azurite and servicebus", pids)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := CheckGone(pids, addrs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary state folder %s left behind: %v", dir, err)
	}
}

func TestFailedStartStopsWhatHadStarted(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads child processes from /proc")
	}
	bad := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(bad, []byte(`{"UserConfig": "not a config"}`), 0o644)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{StateDir: dir, ServiceBusConfig: bad})
	if err == nil {
		s.Stop()
		t.Fatal("a stack with a broken Service Bus config started")
	}
	if !strings.Contains(err.Error(), "Service Bus emulator") {
		t.Errorf("error does not name the part that failed: %v", err)
	}
	if kids := children(t); len(kids) > 0 {
		t.Fatalf("child processes left after a failed start: %v", kids)
	}
}

func TestCheckGoneReportsWhatIsLeft(t *testing.T) {
	s, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	err = CheckGone(s.PIDs(), s.Addrs())
	if err == nil || !strings.Contains(err.Error(), "azurite (pid") || !strings.Contains(err.Error(), "keyvault still listens") {
		t.Fatalf("CheckGone on a running stack = %v", err)
	}
}

// children lists this process's live child processes.
func children(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised name: state, ppid, …
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[0] != "Z" && f[1] == strconv.Itoa(me) {
			out = append(out, pid)
		}
	}
	return out
}
