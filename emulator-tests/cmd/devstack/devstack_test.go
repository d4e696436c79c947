package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/functions/config"
)

// The first step checks each emulator through the Azure SDK, in one step,
// and the demo stops what it started.
func TestStackStepShowsEachEmulatorAnswersAndLeavesNothingBehind(t *testing.T) {
	var out bytes.Buffer
	dir := filepath.Join(t.TempDir(), "demo")
	rep, err := runDemo(t.Context(), &out, demoConfig{StateDir: dir}, []demoStep{stackStep()})
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"==> 1/1 The local Azure stack is up", "a blob, a table row, a queue message, a secret and an email",
		"no port is left open", "Demo finished: all 1 steps passed."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	transcript, err := os.ReadFile(filepath.Join(dir, transcriptFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"wrote demo/hello.txt", "table demojobs", "queue alerts", "secret machine-branch-srv01", "the sink captured it"} {
		if !strings.Contains(string(transcript), want) {
			t.Errorf("transcript lacks %q:\n%s", want, transcript)
		}
	}
	if len(rep.PIDs) != 2 || len(rep.Addrs) < 7 {
		t.Fatalf("demo ran pids %v on %v, want azurite and servicebus on 7 addresses", rep.PIDs, rep.Addrs)
	}
	if err := stack.CheckGone(rep.PIDs, rep.Addrs); err != nil {
		t.Fatal(err)
	}
}

// A failing step ends the demo, and everything started is stopped: the
// emulators and a control plane that ignores SIGTERM and has to be killed.
func TestDemoStopsEverythingWhenAStepFails(t *testing.T) {
	bin := fakeBin(t)
	childStopGrace = 300 * time.Millisecond
	t.Cleanup(func() { childStopGrace = 10 * time.Second })
	t.Setenv(fakeMode, "stubborn")
	ranAfter := false
	steps := []demoStep{
		{"start a control plane", func(ctx context.Context, d *demo) (string, error) {
			d.token = "token-of-the-test-0123456789"
			_, err := d.startControlPlane(ctx, "coffer-functions", true)
			return "started", err
		}},
		{"a step that breaks", func(context.Context, *demo) (string, error) { return "", errors.New("boom") }},
		{"a step after it", func(context.Context, *demo) (string, error) { ranAfter = true; return "", nil }},
	}
	var out bytes.Buffer
	rep, err := runDemo(t.Context(), &out, demoConfig{StateDir: filepath.Join(t.TempDir(), "demo"), Bin: bin}, steps)
	if err == nil || !strings.Contains(err.Error(), `2 "a step that breaks"`) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("demo error = %v, want the failing step named with its cause", err)
	}
	if ranAfter {
		t.Error("the demo went on after a failed step")
	}
	if !strings.Contains(out.String(), "FAILED: boom") || !strings.Contains(out.String(), "no port is left open") ||
		strings.Contains(out.String(), "Demo finished") {
		t.Errorf("output:\n%s", out.String())
	}
	if rep.PIDs["coffer-functions"] == 0 || rep.Addrs["coffer-functions"] == "" || rep.PIDs["azurite"] == 0 {
		t.Fatalf("processes recorded: %v %v", rep.PIDs, rep.Addrs)
	}
	if err := stack.CheckGone(rep.PIDs, rep.Addrs); err != nil {
		t.Fatal(err)
	}
}

// The control plane is started with the stack's settings and a public URL
// naming the port it listens on, and stopped with SIGTERM first; one that
// ignores SIGTERM is killed.
func TestControlPlaneStartsWithItsSettingsAndStopsPolitelyFirst(t *testing.T) {
	bin := fakeBin(t)
	childStopGrace = 300 * time.Millisecond
	t.Cleanup(func() { childStopGrace = 10 * time.Second })
	signals := t.TempDir()
	t.Setenv(fakeSignals, signals)
	t.Setenv(fakeMode, "polite")
	var urls []string
	steps := []demoStep{
		{"start two control planes", func(ctx context.Context, d *demo) (string, error) {
			d.token = "token-of-the-test-0123456789"
			for _, c := range []struct {
				name, mode string
				standalone bool
			}{{"coffer-functions", "polite", true}, {"coffer-functions-host", "stubborn", false}} {
				os.Setenv(fakeMode, c.mode) // read when the child starts
				url, err := d.startControlPlane(ctx, c.name, c.standalone)
				if err != nil {
					return "", err
				}
				urls = append(urls, url)
				var env map[string]string
				if err := getJSON(ctx, url+"/env", &env); err != nil {
					return "", err
				}
				want := map[string]string{
					"COFFER_PUBLIC_URL": url, "COFFER_TOKEN_CONTRIBUTOR": d.token, "COFFER_DEV_CLOCK": "1",
					"COFFER_ALERTS_QUEUE": "alerts", "COFFER_AUTH_MODE": "tokens",
					"COFFER_STORAGE_CONNECTION_STRING":    d.Stack.Azurite.ConnectionString(),
					"COFFER_SERVICEBUS_CONNECTION_STRING": d.Stack.ServiceBus.ConnectionString(),
					"COFFER_KEYVAULT_URL":                 d.Stack.KeyVault.URL(), "COFFER_SMTP_PORT": d.Stack.SMTP.Port(),
					"args": fmt.Sprintf("--standalone=%t --addr %s", c.standalone, strings.TrimPrefix(url, "http://")),
				}
				for k, v := range want {
					if env[k] != v {
						return "", fmt.Errorf("%s got %s=%q, want %q", c.name, k, env[k], v)
					}
				}
			}
			return "started", nil
		}},
	}
	var out bytes.Buffer
	rep, err := runDemo(t.Context(), &out, demoConfig{StateDir: filepath.Join(t.TempDir(), "demo"), Bin: bin}, steps)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(urls) != 2 || urls[0] == urls[1] {
		t.Fatalf("control planes on %v", urls)
	}
	for _, name := range []string{"coffer-functions", "coffer-functions-host"} {
		b, err := os.ReadFile(filepath.Join(signals, fmt.Sprint(rep.PIDs[name])))
		if err != nil || !strings.Contains(string(b), "terminated") {
			t.Errorf("%s (pid %d) was not sent SIGTERM first: %q %v", name, rep.PIDs[name], b, err)
		}
	}
	if err := stack.CheckGone(rep.PIDs, rep.Addrs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "coffer-functions-host (pid") {
		t.Errorf("output does not name the stopped control planes:\n%s", out.String())
	}
}

// Without the binaries the demo says how to build them, before it starts
// any emulator.
func TestDemoWithoutTheBinariesSaysHowToBuildThem(t *testing.T) {
	dir := t.TempDir()
	root := newRoot()
	root.SetArgs([]string{"--dir", filepath.Join(dir, "dev"), "demo", "--bin", filepath.Join(dir, "empty")})
	var out bytes.Buffer
	root.SetOut(&out)
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "make build") || !strings.Contains(err.Error(), "coffer-functions") {
		t.Fatalf("demo without binaries: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dev")); !os.IsNotExist(err) || out.Len() > 0 {
		t.Errorf("the demo started anyway: %v\n%s", err, out.String())
	}
}

// make dev-up and make dev-down: the stack and its control plane outlive
// the command that started them, status gives a working one-time sign-in
// link to the portal, and down stops every process it recorded.
func TestUpStatusDownLeaveNothingBehind(t *testing.T) {
	bin := t.TempDir()
	for name, pkg := range map[string]string{
		"devstack":         ".",
		"coffer-functions": "github.com/coffer-backup/coffer/functions/cmd/coffer-functions",
	} {
		if out, err := exec.Command("go", "build", "-o", exe(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	dir := filepath.Join(t.TempDir(), "dev")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(exe(bin, "devstack"), append([]string{"--dir", dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("devstack %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("up")
	if !strings.Contains(out, "The local stack is up.") {
		t.Fatalf("up: %s", out)
	}
	st, err := readState(dir)
	if err != nil || st == nil {
		t.Fatalf("state after up: %v %v", st, err)
	}
	t.Cleanup(func() { run("down") }) // if an assertion below fails
	cpPID := st.PIDs[controlPlaneName]
	if cpPID == 0 || st.ControlPlane != "http://"+st.Addrs["controlplane"] {
		t.Fatalf("the control plane is not in the state: pids %v, addrs %v, url %q", st.PIDs, st.Addrs, st.ControlPlane)
	}
	if !strings.Contains(out, "Vault portal:  "+st.ControlPlane+"/portal/") || !strings.Contains(out, st.ControlPlane+"/portal/#signin=") {
		t.Errorf("up does not show the portal and a sign-in link:\n%s", out)
	}
	if out := run("up"); !strings.Contains(out, "already running") {
		t.Errorf("second up: %s", out)
	}
	status := run("status")
	if !strings.Contains(status, "running since") || !strings.Contains(status, st.Addrs["blob"]) {
		t.Errorf("status: %s", status)
	}
	// status's link signs a browser in once, as Backup Contributor.
	m := regexp.MustCompile(`Sign in as Backup Contributor, once, until \S+: (http://\S+/portal/#signin=(\S+))`).FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("status prints no sign-in link:\n%s", status)
	}
	if code, who := redeemLink(t, st.ControlPlane, m[2]); code != http.StatusOK || who != "Backup Contributor" {
		t.Errorf("redeeming the link: %d %q, want 200 as Backup Contributor", code, who)
	}
	if code, _ := redeemLink(t, st.ControlPlane, m[2]); code != http.StatusUnauthorized {
		t.Errorf("the link worked twice: %d", code)
	}
	env := run("env")
	for _, k := range []string{stack.EnvStorage, stack.EnvServiceBus, stack.EnvKeyVault, stack.EnvSSLCertFile, stack.EnvSMTPHost,
		envControlPlaneURL, envAdminToken, config.TokenContributor, config.TokenOperator, config.TokenReader, config.TokenSecurityAdmin} {
		if !strings.Contains(env, "export "+k+"=") {
			t.Errorf("env lacks %s:\n%s", k, env)
		}
	}
	// The exported admin token works against the exported control plane:
	// the API answers it, with tables Azurite holds.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, st.Env[envControlPlaneURL]+"/api/v1/vaults", nil)
	req.Header.Set("Authorization", "Bearer "+st.Env[envAdminToken])
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v1/vaults with the exported token: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	for _, f := range []string{stateFile, envFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
			t.Errorf("%s holds the role tokens but is %v (%v), want 0600", f, fi.Mode(), err)
		}
	}
	if out := run("down"); !strings.Contains(out, "stopped") {
		t.Fatalf("down: %s", out)
	}
	all := map[string]int{"supervisor": st.Supervisor}
	for k, v := range st.PIDs {
		all[k] = v
	}
	if err := stack.CheckGone(all, st.Addrs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !os.IsNotExist(err) {
		t.Errorf("state file left after down: %v", err)
	}
	if out := run("status"); !strings.Contains(out, "not running") {
		t.Errorf("status after down: %s", out)
	}
}

// redeemLink signs in with a sign-in link's code as the portal's page
// does, and returns the answer's status and the session's role name.
func redeemLink(t *testing.T, base, code string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"link": code})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/portal/session", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s struct {
		RoleName string `json:"roleName"`
	}
	json.NewDecoder(res.Body).Decode(&s)
	if res.StatusCode == http.StatusOK && !slices.ContainsFunc(res.Cookies(), func(c *http.Cookie) bool { return c.Name == "coffer_session" && c.HttpOnly }) {
		t.Errorf("signing in by link set no HttpOnly session cookie: %v", res.Cookies())
	}
	return res.StatusCode, s.RoleName
}

// Without coffer-functions, up says how to build it and starts nothing.
func TestUpWithoutTheControlPlaneSaysHowToBuildIt(t *testing.T) {
	dir := t.TempDir()
	root := newRoot()
	root.SetArgs([]string{"--dir", filepath.Join(dir, "dev"), "up", "--bin", filepath.Join(dir, "empty")})
	var out bytes.Buffer
	root.SetOut(&out)
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "make build") || !strings.Contains(err.Error(), "coffer-functions") {
		t.Fatalf("up without coffer-functions: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dev")); !os.IsNotExist(err) || out.Len() > 0 {
		t.Errorf("up started anyway: %v\n%s", err, out.String())
	}
}
