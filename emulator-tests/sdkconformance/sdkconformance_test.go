package sdkconformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/locate"
	"github.com/coffer-backup/coffer/emulator-tests/servicebus"
)

// The npm packages the JavaScript tests load.
var packages = []string{"@azure/service-bus", "@azure/keyvault-secrets", "rhea", "long"}

// prerequisites returns node and the emulator-tests folder, or fails the test in
// one line naming what is missing.
func prerequisites(t *testing.T) (node, dir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("sdkconformance: starts the emulators and node; skipped under -short")
	}
	node, dir, err := findPrerequisites()
	if err != nil {
		t.Fatal(err)
	}
	return node, dir
}

func findPrerequisites() (node, dir string, err error) {
	if dir, err = locate.Dir(); err != nil {
		return "", "", fmt.Errorf("sdkconformance: %w", err)
	}
	if node, err = locate.Node(""); err != nil {
		return "", "", fmt.Errorf("sdkconformance: %w", err)
	}
	for _, p := range packages {
		if _, err := locate.NodeModule(dir, p, "package.json"); err != nil {
			return "", "", fmt.Errorf("sdkconformance: %w", err)
		}
	}
	return node, dir, nil
}

// Without the npm packages the run fails in one line that says how to install them.
func TestMissingPackagesAreNamedInOneLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(locate.EnvDir, dir)
	_, _, err := findPrerequisites()
	if err == nil {
		t.Fatal("found the SDKs in an empty folder")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "@azure/service-bus") || !strings.Contains(msg, "make deps") {
		t.Fatalf("error %q: want one line naming @azure/service-bus and make deps", msg)
	}
}

// runNode runs one JavaScript test file with node's test runner and fails the
// test with node's output if any of its tests fail. The file runs in node's own
// process (no --test orchestrator), so stopping it stops every test.
func runNode(t *testing.T, node, dir, file string, env []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test-reporter=spec", filepath.Join("js", file))
	cmd.Dir, _ = os.Getwd()
	cmd.Env = append(os.Environ(),
		// Resolve the pinned packages from emulator-tests/node_modules whatever the layout.
		"NODE_PATH="+filepath.Join(dir, "node_modules"),
		// A proxy from the environment must never carry requests to a local emulator.
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost",
		"NODE_NO_WARNINGS=1",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("node %s did not finish within 10 minutes; its output:\n%s", file, out.String())
	}
	if err != nil {
		t.Fatalf("node %s: %v; its output:\n%s", file, err, out.String())
	}
	t.Logf("node %s:\n%s", file, summary(out.String()))
}

// summary keeps the lines of node's spec report that name a test or count them.
func summary(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "✔") || strings.HasPrefix(l, "ℹ tests") || strings.HasPrefix(l, "ℹ pass") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// @azure/service-bus against the Service Bus emulator, serving testdata/servicebus.json.
func TestServiceBusThroughTheJavaScriptSDK(t *testing.T) {
	t.Parallel()
	node, dir := prerequisites(t)
	logPath := filepath.Join(t.TempDir(), "servicebus.log")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := servicebus.Start(ctx, servicebus.Options{
		Dir:        dir,
		ConfigPath: filepath.Join("testdata", "servicebus.json"),
		LogPath:    logPath,
		Env:        []string{"SB_EMULATOR_DEBUG=1"},
	})
	if err != nil {
		t.Fatalf("start the Service Bus emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Stop(); err != nil {
			t.Errorf("stop the Service Bus emulator: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("emulator log, last part:\n%s", tail(string(b), 6000))
			}
		}
	})
	runNode(t, node, dir, "servicebus.test.js", []string{"SB_CONNECTION_STRING=" + sb.ConnectionString()})
}

// @azure/keyvault-secrets against two Key Vault emulators: one with purge
// protection, as Coffer deploys it, and one to restore a backup into.
func TestKeyVaultThroughTheJavaScriptSDK(t *testing.T) {
	t.Parallel()
	node, dir := prerequisites(t)
	vault, err := keyvault.Start(keyvault.Options{PurgeProtection: true})
	if err != nil {
		t.Fatalf("start the Key Vault emulator: %v", err)
	}
	t.Cleanup(func() { vault.Close() })
	other, err := keyvault.Start(keyvault.Options{})
	if err != nil {
		t.Fatalf("start the second Key Vault emulator: %v", err)
	}
	t.Cleanup(func() { other.Close() })
	// A vault with Azure RBAC, as deployed: machine A's identity holds Coffer's machine role on its
	// own secret only.
	rbac, err := keyvault.Start(keyvault.Options{Access: &keyvault.Access{}, PurgeProtection: true})
	if err != nil {
		t.Fatalf("start the Key Vault emulator with RBAC: %v", err)
	}
	t.Cleanup(func() { rbac.Close() })
	const machineA = "a0a0a0a0-0000-4000-8000-00000000000a"
	tokA, err := rbac.NewToken(machineA)
	if err != nil {
		t.Fatal(err)
	}
	if err := rbac.Assign(keyvault.RoleAssignment{PrincipalID: machineA, RoleID: keyvault.RoleMachinePassphrase, Scope: "/secrets/coffer-passphrase-a"}); err != nil {
		t.Fatal(err)
	}
	// Each emulator made its own CA; node reads every certificate in the file.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	var pems []byte
	for _, s := range []*keyvault.Server{vault, other, rbac} {
		pems = append(pems, s.CACertPEM()...)
	}
	if err := os.WriteFile(ca, pems, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := keyvault.Credential().GetToken(context.Background(), policyOptions)
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, node, dir, "keyvault.test.js", []string{
		"KV_URL=" + vault.URL(),
		"KV_URL_OTHER=" + other.URL(),
		"KV_TOKEN=" + tok.Token,
		"KV_RBAC_URL=" + rbac.URL(),
		"KV_RBAC_TOKEN=" + tokA,
		"KV_RBAC_OID=" + machineA,
		"NODE_EXTRA_CA_CERTS=" + ca,
	})
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("...%s", s[len(s)-n:])
}
