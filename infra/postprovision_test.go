package infra

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestPostprovisionRestartsUntilTheKeyVaultReferenceResolves runs the azd
// postprovision hook with a stand-in `az` that reports the SMTP password's
// Key Vault reference as denied until the app has been restarted once, as
// happens when the reference is written before its role assignment
// propagates.
func TestPostprovisionRestartsUntilTheKeyVaultReferenceResolves(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the POSIX hook; postprovision.ps1 is its Windows twin")
	}
	script := filepath.Join(repoRoot, "infra", "scripts", "postprovision.sh")
	run := func(t *testing.T, env ...string) (calls []string, out string) {
		t.Helper()
		bin := t.TempDir()
		log := filepath.Join(bin, "calls")
		// The fake az logs each call; `rest` answers Resolved once a
		// restart has been logged.
		fake := `#!/bin/sh
echo "$*" >> "` + log + `"
case "$1" in
rest) if grep -q "^functionapp restart" "` + log + `"; then echo Resolved; else echo AccessToKeyVaultDenied; fi ;;
esac
`
		if err := os.WriteFile(filepath.Join(bin, "az"), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", script)
		cmd.Env = append([]string{"PATH=" + bin + ":/usr/bin:/bin", "COFFER_POSTPROVISION_WAIT=0",
			"AZURE_SUBSCRIPTION_ID=sub-1", "AZURE_RESOURCE_GROUP=rg-test", "AZURE_FUNCTION_APP_NAME=func-test"}, env...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("postprovision: %v\n%s", err, b)
		}
		raw, _ := os.ReadFile(log)
		for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			if l != "" {
				calls = append(calls, strings.Fields(l)[0]+" "+strings.Fields(l)[1])
			}
		}
		return calls, string(b)
	}

	calls, out := run(t, "SMTP_PASSWORD=secret")
	want := []string{"rest --method", "functionapp restart", "rest --method"}
	if strings.Join(calls, "|") != strings.Join(want, "|") || !strings.Contains(out, "resolved") {
		t.Fatalf("calls %q, want %q; output:\n%s", calls, want, out)
	}
	if calls, _ := run(t); len(calls) != 0 {
		t.Fatalf("without an SMTP password the hook called az: %q", calls)
	}
}

// TestAzureYAMLRunsPostprovision: azd runs the hook after every provision,
// from either shell.
func TestAzureYAMLRunsPostprovision(t *testing.T) {
	y, err := parseYAML(readFile(t, "azure.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for shell, script := range map[string]string{"posix": "infra/scripts/postprovision.sh", "windows": "infra/scripts/postprovision.ps1"} {
		if run := str(y, "hooks", "postprovision", shell, "run"); run != script {
			t.Errorf("azure.yaml hooks.postprovision.%s.run is %q, want %q", shell, run, script)
		}
		if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(script))); err != nil {
			t.Error(err)
		}
	}
}
