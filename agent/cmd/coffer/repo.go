package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cache"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/location"
	"github.com/coffer-backup/coffer/shared/storage/retry"
)

// repoFlags are the flags every repository command takes.
type repoFlags struct {
	repo           string
	passphraseFile string
	cacheDir       string
}

func (f *repoFlags) add(c *cobra.Command) {
	c.Flags().StringVarP(&f.repo, "repo", "r", os.Getenv("COFFER_REPOSITORY"), "repository: a local folder or an Azure Blob container URL with a SAS (default $COFFER_REPOSITORY)")
	c.Flags().StringVar(&f.passphraseFile, "passphrase-file", "", "read the passphrase from this file (default $COFFER_PASSPHRASE)")
	c.Flags().StringVar(&f.cacheDir, "cache-dir", "", "folder for the local cache (default: the user cache folder)")
}

// passphrase reads the passphrase from the file flag or the environment.
func passphrase(file, env string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usagef("read passphrase file: %v", err)
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	if p, ok := os.LookupEnv(env); ok {
		return []byte(p), nil
	}
	return nil, usagef("no passphrase: set %s or give --passphrase-file", env)
}

func (f *repoFlags) backend(ctx context.Context) (storage.Backend, error) {
	if f.repo == "" {
		return nil, usagef("no repository: give --repo (a folder, or an Azure Blob container URL with a SAS)")
	}
	be, err := location.Open(ctx, f.repo)
	if err != nil {
		return nil, err
	}
	return retry.New(be, retry.Policy{}), nil
}

// open opens the repository with the passphrase; it writes nothing.
func (f *repoFlags) open(ctx context.Context) (*repository.Repository, error) {
	pass, err := passphrase(f.passphraseFile, "COFFER_PASSPHRASE")
	if err != nil {
		return nil, err
	}
	be, err := f.backend(ctx)
	if err != nil {
		return nil, err
	}
	r, err := repository.Open(ctx, be, pass, repository.Options{})
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
	dir := f.cacheDir
	if dir == "" {
		d, err := cache.DefaultDir(r.Config().ID)
		if err != nil {
			return nil, err
		}
		dir = d
	} else {
		dir = filepath.Join(dir, r.Config().ID)
	}
	return cache.New(dir, r, 0)
}

// findPoint resolves "latest" or an ID prefix. Points that fail to load
// are left out here; `coffer check` reports them.
func findPoint(ctx context.Context, r *repository.Repository, ref string) (*repository.Point, error) {
	points, _ := r.Points(ctx)
	p, err := repository.FindPoint(points, ref)
	if err != nil {
		return nil, usageError{err}
	}
	return p, nil
}
