package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

// registered makes a registration folder as `coffer register` leaves it,
// for a control plane that is never contacted.
func registered(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "machine.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `{"controlPlaneUrl":"http://127.0.0.1:1","vaultId":"v","vaultName":"branch-offices","machineId":"m","machineName":"branch-01","container":"c"}`
	if err := os.WriteFile(filepath.Join(dir, "agent.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// In a vault, forget and prune point to the policy instead of deleting.
func TestForgetAndPruneInAVaultPointToThePolicy(t *testing.T) {
	t.Setenv("COFFER_REPOSITORY", "")
	dir := registered(t)
	for _, args := range [][]string{
		{"forget", "--keep-last", "1"},
		{"forget", "--keep-daily", "7", "--prune"},
		{"prune"},
	} {
		_, err := execute(append(args, "--config-dir", dir)...)
		if err == nil || cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), "coffer admin policy") || !strings.Contains(err.Error(), "retention") {
			t.Errorf("coffer %v in a vault: %v", args, err)
		}
	}
}
