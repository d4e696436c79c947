package admincmd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newCredentials(f *flags) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "credentials VAULT [-o FILE]",
		Short: "Download a vault credentials file to register machines (Operator)",
		Long: `Generate a new vault credentials file and write it, readable by you only.
It is valid 48 hours, and generating one makes every older file stop working.
Machines register with ` + "`coffer register --credentials FILE`" + `.

The file holds a secret: --json prints where it was written and until when
it is valid, not its contents.`,
		Args: cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			creds, err := s.cp.NewCredentials(ctx, id)
			if err != nil {
				return s.fail(ctx, err)
			}
			path := file
			if path == "" {
				path = credentialsName(creds)
			}
			if err := writePrivate(path, *raw); err != nil {
				return err
			}
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
			if s.asJSON {
				b, err := json.Marshal(struct {
					File      string    `json:"file"`
					VaultID   string    `json:"vaultId"`
					VaultName string    `json:"vaultName"`
					ExpiresAt time.Time `json:"expiresAt"`
				}{path, creds.VaultID, creds.VaultName, creds.ExpiresAt})
				if err != nil {
					return err
				}
				return writeJSON(s.out, b)
			}
			fmt.Fprintf(s.out, "Wrote the credentials file for vault %s to %s.\n", creds.VaultName, path)
			fmt.Fprintf(s.out, "It is valid until %s (48 hours); older credentials files no longer work.\n", detailWhen(&creds.ExpiresAt))
			fmt.Fprintf(s.out, "Register a machine with `coffer register --credentials %s`.\n", quote(path))
			return nil
		},
	}
	c.Flags().StringVarP(&file, "output", "o", "", "file to write (default <vault name>.credentials.json here)")
	return c
}

// credentialsName is a file name from the vault's name, which may hold
// any printable character.
func credentialsName(creds wire.Credentials) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, creds.VaultName)
	if strings.Trim(name, "-.") == "" {
		name = creds.VaultID
	}
	return name + ".credentials.json"
}

// writePrivate writes b to path, owner-only from the first byte:
// os.CreateTemp makes the file 0600 and it is renamed over path, so no
// reader sees a wider mode or half a file, even where path existed.
func writePrivate(path string, b []byte) error {
	fail := func(err error) error {
		return fmt.Errorf("write the credentials file %s: %w; choose another place with -o", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".coffer-credentials-*")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	return nil
}
