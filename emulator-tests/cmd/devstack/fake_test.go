package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The tests stand in a fake coffer-functions for the real one where they
// check only how the demo starts and stops it: this test binary, linked as
// coffer-functions, behaves as fakeMode says.
const (
	fakeMode    = "DEVSTACK_TEST_FAKE_CONTROL_PLANE" // "polite" exits on SIGTERM, "stubborn" ignores it
	fakeSignals = "DEVSTACK_TEST_FAKE_SIGNALS"       // folder where the fake notes each SIGTERM, in a file named by its PID
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeMode); mode != "" && filepath.Base(os.Args[0]) == "coffer-functions" {
		fakeControlPlane(mode)
		return
	}
	os.Exit(m.Run())
}

// fakeControlPlane listens on --addr, prints the line the real one prints,
// and answers GET /env with the settings it was started with.
func fakeControlPlane(mode string) {
	fs := flag.NewFlagSet("coffer-functions", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "")
	fs.Bool("standalone", true, "")
	fs.Parse(os.Args[1:])
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	go func() {
		for range terms {
			if dir := os.Getenv(fakeSignals); dir != "" {
				f, _ := os.OpenFile(filepath.Join(dir, fmt.Sprint(os.Getpid())), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				fmt.Fprintln(f, "terminated")
				f.Close()
			}
			if mode == "polite" {
				os.Exit(0)
			}
		}
	}()
	fmt.Printf("coffer-functions listening on http://%s\n", ln.Addr())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{"args": strings.Join(os.Args[1:], " ")}
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && (strings.HasPrefix(k, "COFFER_") || strings.HasPrefix(k, "FUNCTIONS_")) {
				env[k] = v
			}
		}
		json.NewEncoder(w).Encode(env)
	}))
}

// fakeBin is a folder whose coffer-functions is the fake.
func fakeBin(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(self, exe(dir, "coffer-functions")); err != nil {
		t.Skipf("cannot link the fake control plane: %v", err)
	}
	return dir
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
