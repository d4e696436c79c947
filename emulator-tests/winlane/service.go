package winlane

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// serviceWait bounds each wait for the service manager: starting coffer.exe
// under wine takes a few seconds on a busy machine.
const serviceWait = 60 * time.Second

// service installs `coffer run` as a service through wine's service control
// manager, with a registration whose control plane refuses connections (no
// vault runs in the lane, so no scheduled backup can run: see gaps.go),
// checks that it runs and logs, stops it with `net stop`, and uninstalls it.
//
// The registration and the log are in their default folder,
// %ProgramData%\Coffer, as the service sees it. Wine 8's services.exe
// starts a service with an environment of its own making, where
// %ProgramData% is C:\users\Public (a console process sees
// C:\ProgramData), and without the Environment value of the service's key,
// so COFFER_CONFIG_DIR and COFFER_LOG_DIR (what --config-dir and --log-dir
// set) never reach the service (gaps.go: ServiceGaps).
func (st *storyState) service(ctx context.Context) (err error) {
	dataDir := filepath.Join(st.W.Prefix, "drive_c", "users", "Public", "Coffer")
	if err := os.RemoveAll(dataDir); err != nil {
		return err
	}
	if err := writeRegistration(dataDir); err != nil {
		return err
	}
	logFile := filepath.Join(dataDir, "logs", "coffer.log")
	// Keep the prefix's wineserver up for the whole step. Once the
	// service stops and no program runs, it exits, and the next wine
	// program starts a new one whose services.exe starts the service again,
	// as Windows does at boot for an automatic service.
	keep := st.W.Command(ctx, st.Wintree, "write", st.win(`keepalive.log`))
	keepIn, err := keep.StdinPipe()
	if err != nil {
		return err
	}
	keepOut, err := keep.StdoutPipe()
	if err != nil {
		return err
	}
	if err := keep.Start(); err != nil {
		return fmt.Errorf("start wintree write to keep wine up: %w", err)
	}
	defer func() {
		keepIn.Close()
		keep.Wait()
	}()
	// Its first line says wine is up, so the service manager is not started
	// by (and holding the output of) the install below.
	if line, err := bufio.NewReader(keepOut).ReadString('\n'); err != nil || strings.TrimSpace(line) != "writing" {
		return fmt.Errorf("wintree write did not start (%q, %v)", line, err)
	}
	installed := false
	defer func() {
		if installed {
			// Leave no service behind: it starts automatically with the
			// prefix's next wineserver.
			st.run(context.WithoutCancel(ctx), nil, st.CofferExe, "service", "uninstall")
		}
		if err == nil {
			err = os.RemoveAll(dataDir)
		}
	}()

	installed = true // also when install fails after creating the service
	// install checks the registration where the console's %ProgramData%
	// is not, so it is named; the service finds it by default.
	r, err := st.coffer(ctx, "", []int{0}, "service", "install",
		"--config-dir", `C:\users\Public\Coffer`, "--log-dir", `C:\users\Public\Coffer\logs`)
	if err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	if !strings.Contains(r.stdout, "Installed and started service coffer") {
		return fmt.Errorf("service install did not say it started the service: %s", r)
	}
	// wine 8 has no delayed automatic start: install must go on with a
	// plain automatic start and say so once.
	if n := strings.Count(r.stderr, "no delayed automatic start"); n != 1 {
		return fmt.Errorf("service install warned %d times about the missing delayed start, want once: %s", n, r)
	}

	if err := st.waitStatus(ctx, "running", func(s svcStatus) bool { return s.Installed && s.Running }); err != nil {
		return err
	}
	if err := waitFileHas(ctx, logFile, `"agent started"`); err != nil {
		return fmt.Errorf("the service's coffer run: %w", err)
	}
	// The policy sync reaches the (refused) control plane and keeps going.
	if err := waitFileHas(ctx, logFile, `policy not refreshed`); err != nil {
		return fmt.Errorf("the service's coffer run: %w", err)
	}

	r, err = st.run(ctx, nil, "net", "stop", "coffer")
	if err != nil {
		return err
	}
	if r.code != 0 {
		return fmt.Errorf("net stop coffer: %s", r)
	}
	if err := st.waitStatus(ctx, "stopped", func(s svcStatus) bool { return s.Installed && !s.Running && strings.HasPrefix(s.Detail, "stopped") }); err != nil {
		return err
	}
	// A clean stop: Stop cancelled coffer run's context.
	if err := waitFileHas(ctx, logFile, `"agent stopped"`); err != nil {
		return fmt.Errorf("the service's coffer run after net stop: %w", err)
	}

	if _, err := st.coffer(ctx, "", []int{0}, "service", "uninstall"); err != nil {
		return fmt.Errorf("service uninstall: %w", err)
	}
	installed = false
	if err := st.waitStatus(ctx, "uninstalled", func(s svcStatus) bool { return !s.Installed }); err != nil {
		return err
	}
	fmt.Fprintf(st.Out, "    wine's service manager: %d gaps worked around (winlane.ServiceGaps); no scheduled backup without a vault\n", len(ServiceGaps))
	return nil
}

type svcStatus struct {
	Installed, Running bool
	Detail             string
}

// waitStatus asks `coffer service status --json` until ok holds.
func (st *storyState) waitStatus(ctx context.Context, what string, ok func(svcStatus) bool) error {
	deadline := time.Now().Add(serviceWait)
	var last result
	for {
		r, err := st.coffer(ctx, "", []int{0}, "service", "status", "--json")
		if err != nil {
			return fmt.Errorf("service status: %w", err)
		}
		var s svcStatus
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			return fmt.Errorf("service status --json printed no status (%v): %s", err, r)
		}
		if ok(s) {
			return nil
		}
		last = r
		if time.Now().After(deadline) {
			return fmt.Errorf("the service was not %s within %v; last status: %s", what, serviceWait, last)
		}
		// Each status is a new wine process, which paces the loop.
	}
}

// waitFileHas waits until the file holds text, watching it every 100 ms.
func waitFileHas(ctx context.Context, name, text string) error {
	ctx, cancel := context.WithTimeout(ctx, serviceWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(name)
		if err == nil && strings.Contains(string(b), text) {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no log %s within %v", name, serviceWait)
			}
			return fmt.Errorf("%s did not log %s within %v; it holds:\n%s", name, text, serviceWait, indent(tail(b, 15), "    "))
		case <-tick.C:
		}
	}
}

// writeRegistration writes what `coffer register` would (agent.json and
// machine.key) for a control plane that refuses connections.
func writeRegistration(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	cfg, err := json.MarshalIndent(map[string]string{
		"controlPlaneUrl": "http://127.0.0.1:9", // discard: refused at once
		"vaultId":         "lane-vault",
		"vaultName":       "lane",
		"machineId":       "lane-machine",
		"machineName":     "wine",
		"container":       "lane",
		"blobEndpoint":    "http://127.0.0.1:9/blob",
		"keyVaultUrl":     "http://127.0.0.1:9/kv",
		"secretName":      "lane",
	}, "", "  ")
	if err != nil {
		return err
	}
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "machine.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600),
		os.WriteFile(filepath.Join(dir, "agent.json"), cfg, 0o600))
}
