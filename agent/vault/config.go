// Package vault is the agent's membership of a Coffer vault: its
// registration (identity key and settings in the config folder), the
// passphrase escrowed in Key Vault, storage reached only through SAS tokens
// from the control plane, and job and point reports.
package vault

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// EnvConfigDir overrides the config folder.
const EnvConfigDir = "COFFER_CONFIG_DIR"

// DefaultDir is where the agent keeps its registration, per OS:
//   - Linux and other Unix, as root: /var/lib/coffer; otherwise
//     $XDG_CONFIG_HOME/coffer (~/.config/coffer).
//   - Windows: %ProgramData%\Coffer.
//   - macOS, as root: /Library/Application Support/Coffer; otherwise
//     ~/Library/Application Support/Coffer.
//
// $COFFER_CONFIG_DIR overrides it.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvConfigDir); d != "" {
		return d, nil
	}
	switch runtime.GOOS {
	case "windows":
		if pd := os.Getenv("ProgramData"); pd != "" {
			return filepath.Join(pd, "Coffer"), nil
		}
	case "darwin":
		if os.Geteuid() == 0 {
			return "/Library/Application Support/Coffer", nil
		}
	default:
		if os.Geteuid() == 0 {
			return "/var/lib/coffer", nil
		}
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find a config folder (set %s): %w", EnvConfigDir, err)
	}
	return filepath.Join(d, "coffer"), nil
}

// Config is a registered machine's settings, in agent.json.
type Config struct {
	ControlPlaneURL string `json:"controlPlaneUrl"`
	VaultID         string `json:"vaultId"`
	VaultName       string `json:"vaultName"`
	MachineID       string `json:"machineId"`
	MachineName     string `json:"machineName"`
	Container       string `json:"container"`
	BlobEndpoint    string `json:"blobEndpoint"`
	KeyVaultURL     string `json:"keyVaultUrl"`
	SecretName      string `json:"secretName"`
	TenantID        string `json:"tenantId,omitempty"`
}

const (
	configFile = "agent.json"
	keyFile    = "machine.key"
)

// ErrNotRegistered: the folder holds no registration.
var ErrNotRegistered = errors.New("this machine is not registered with a vault")

// Load reads the registration in dir.
func Load(dir string) (*Config, ed25519.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w (no %s in %s); register this machine with `coffer register`", ErrNotRegistered, configFile, dir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read the registration: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, nil, fmt.Errorf("%s in %s is damaged (%v); register again", configFile, dir, err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read the machine key: %w", err)
	}
	blk, _ := pem.Decode(kb)
	if blk == nil {
		return nil, nil, fmt.Errorf("%s in %s is not a PEM key; register again", keyFile, dir)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	priv, ok := k.(ed25519.PrivateKey)
	if err != nil || !ok {
		return nil, nil, fmt.Errorf("%s in %s is not an Ed25519 key; register again", keyFile, dir)
	}
	return &c, priv, nil
}

// save writes the registration, owner-only: the key is the machine's
// identity to the control plane.
func save(dir string, c *Config, key ed25519.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the config folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, configFile), append(b, '\n'))
}

// writeFile replaces name atomically with owner-only permissions.
func writeFile(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
