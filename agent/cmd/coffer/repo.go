package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/agent/cache"
	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/limit"
	"github.com/coffer-backup/coffer/shared/storage/location"
	"github.com/coffer-backup/coffer/shared/storage/retry"
)

// repoFlags are the flags every repository command takes.
type repoFlags struct {
	repo           string
	passphraseFile string
	cacheDir       string
	configDir      string
	fromMachine    string // restore another machine's data (vault mode)
	sourcePassFile string
	creating       bool // init: the only command that may create the repository's folder

	session *vault.Session // set in vault mode: no --repo, and this machine is registered
	upload  *rate.Limiter  // backup --limit-upload, for a standalone repository
	json    bool           // the command's output is JSON: no text notices on stderr
}

// pruneWait is how long a backup that finishes while a prune holds the
// repository's lock waits for it before giving up its point. A prune of a
// large remote repository can take hours, and the backup's work is kept
// for its next run either way.
const pruneWait = 6 * time.Hour

func (f *repoFlags) add(c *cobra.Command) {
	c.Flags().StringVarP(&f.repo, "repo", "r", os.Getenv("COFFER_REPOSITORY"), "repository: a local folder or an Azure Blob container URL with a SAS (default $COFFER_REPOSITORY)")
	c.Flags().StringVar(&f.passphraseFile, "passphrase-file", "", "read the passphrase from this file (default $COFFER_PASSPHRASE)")
	c.Flags().StringVar(&f.cacheDir, "cache-dir", "", "folder for the local cache (default: the user cache folder)")
	addConfigDir(c, &f.configDir)
}

func addConfigDir(c *cobra.Command, dir *string) {
	c.Flags().StringVar(dir, "config-dir", "", "the agent's registration `DIR` (default $COFFER_CONFIG_DIR, or the OS's; see \"coffer register --help\")")
}

// vaultSession opens this machine's vault registration.
func vaultSession(dir string) (*vault.Session, error) {
	if dir == "" {
		d, err := vault.DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	return vault.Open(dir)
}

// vaultMode reports whether the command works through the vault: no
// repository was named and the machine is registered.
func (f *repoFlags) vaultMode() (bool, error) {
	if f.repo != "" {
		return false, nil
	}
	if f.session != nil {
		return true, nil
	}
	s, err := vaultSession(f.configDir)
	if errors.Is(err, vault.ErrNotRegistered) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	f.session = s
	return true, nil
}

// passphrase reads the passphrase from the file flag or the environment,
// or else asks for it on the terminal.
func passphrase(file, env string) ([]byte, error) {
	return passphraseAs(file, env, "Passphrase", false)
}

// passphraseAs is passphrase, with the terminal prompt's label and whether
// a typed passphrase must be typed twice (a new one: init, change).
func passphraseAs(file, env, label string, confirm bool) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, cli.Usagef("read passphrase file: %v", err)
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	if p, ok := os.LookupEnv(env); ok && env != "" {
		return []byte(p), nil
	}
	if canAsk() {
		return askPassphrase(label, confirm)
	}
	return nil, cli.Usagef("no passphrase: set %s or give --passphrase-file, or run on a terminal to type it", env)
}

func (f *repoFlags) backend(ctx context.Context) (storage.Backend, error) {
	if vm, err := f.vaultMode(); err != nil {
		return nil, err
	} else if vm {
		return f.session.Backend(), nil
	}
	if f.repo == "" {
		return nil, cli.Usagef("no repository: give --repo (a folder, or an Azure Blob container URL with a SAS), or register this machine with `coffer register`")
	}
	if !f.creating && !strings.Contains(f.repo, "://") {
		// Opening a folder creates it; only init may, so that a mistyped
		// --repo is reported (exit 10) and leaves nothing behind.
		if _, err := os.Stat(f.repo); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (folder %s does not exist)", repository.ErrNotRepository, f.repo)
		}
	}
	be, err := location.Open(ctx, f.repo)
	if err != nil {
		return nil, err
	}
	if f.upload != nil {
		be = limit.New(be, limit.Options{Upload: f.upload})
	}
	be = retry.New(be, retry.Policy{})
	if strings.Contains(f.repo, "://") {
		if err := reach(ctx, be); err != nil {
			return nil, err
		}
	}
	return be, nil
}

// open opens the repository with the passphrase; it writes nothing.
func (f *repoFlags) open(ctx context.Context) (*repository.Repository, error) {
	if vm, err := f.vaultMode(); err != nil {
		return nil, err
	} else if vm && f.fromMachine != "" {
		var pass []byte
		if f.sourcePassFile != "" {
			if pass, err = passphrase(f.sourcePassFile, ""); err != nil {
				return nil, err
			}
		}
		r, _, err := f.session.SourceRepository(ctx, f.fromMachine, pass)
		if errors.Is(err, vault.ErrSourcePassphrase) {
			return nil, fmt.Errorf("%w; or give the source machine's passphrase with --source-passphrase-file", err)
		}
		return r, err
	} else if f.fromMachine != "" {
		return nil, cli.Usagef("--from-machine works on a machine registered with a vault, without --repo")
	} else if vm && f.passphraseFile == "" && os.Getenv("COFFER_PASSPHRASE") == "" {
		// The escrowed passphrase, fetched from Key Vault.
		return f.session.Repository(ctx)
	}
	pass, err := passphrase(f.passphraseFile, "COFFER_PASSPHRASE")
	if err != nil {
		return nil, err
	}
	be, err := f.backend(ctx)
	if err != nil {
		return nil, err
	}
	r, err := repository.Open(ctx, be, pass, repository.Options{PruneWait: pruneWait, PruneWaiting: func(l repository.PruneLockInfo) {
		if !f.json {
			fmt.Fprintf(os.Stderr, "A prune (process %d on %s, since %s) holds the repository's lock: waiting up to %v for it to finish before saving the point. Ctrl-C stops the backup; what it uploaded is reused by the next one.\n",
				l.PID, l.Hostname, l.Time.Local().Format("2006-01-02 15:04"), pruneWait)
		}
	}})
	if errors.Is(err, repository.ErrWrongPassphrase) {
		return nil, fmt.Errorf("%w; check COFFER_PASSPHRASE or --passphrase-file", err)
	}
	return r, err
}

// openIndexed opens the repository and loads its index.
func (f *repoFlags) openIndexed(ctx context.Context) (*repository.Repository, error) {
	r, err := f.open(ctx)
	if err != nil {
		return nil, err
	}
	st, err := r.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range append(st.DamagedIndex, st.DamagedPacks...) {
		fmt.Fprintf(os.Stderr, "warning: %s is damaged and was ignored; run `coffer check --read-data`\n", name)
	}
	return r, nil
}

func (f *repoFlags) cache(r *repository.Repository) (*cache.Cache, error) {
	return cache.ForRepository(f.cacheDir, r.Config().ID, r)
}

// findPoint resolves "latest" or an ID prefix. Points that fail to load
// are left out here; `coffer check` reports them.
func findPoint(ctx context.Context, r *repository.Repository, ref string) (*repository.Point, error) {
	points, _ := r.Points(ctx)
	p, err := repository.FindPoint(points, ref)
	if errors.Is(err, repository.ErrNoPoint) {
		return nil, err // a point that does not exist is a failure, exit 1
	} else if err != nil {
		return nil, cli.UsageError{Err: err}
	}
	return p, nil
}
