package restorer_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage"
)

func sourceTree(t *testing.T, seed uint64) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: seed, Files: 40, MaxSize: 200 << 10, BigFiles: 1}); err != nil {
		t.Fatal(err)
	}
	return src
}

func objects(t *testing.T, be storage.Backend) []string {
	t.Helper()
	var names []string
	be.List(t.Context(), "", func(fi storage.Info) error { names = append(names, fi.Name); return nil })
	slices.Sort(names)
	return names
}

func TestWrongPassphraseIsRefusedAndWritesNothing(t *testing.T) {
	r := newRepo(t)
	before := objects(t, r.Backend())
	_, err := repository.Open(t.Context(), r.Backend(), []byte("this is not the passphrase"), repository.Options{})
	if !errors.Is(err, repository.ErrWrongPassphrase) {
		t.Fatalf("open with a wrong passphrase: %v", err)
	}
	if after := objects(t, r.Backend()); !slices.Equal(before, after) {
		t.Fatalf("objects changed: %v -> %v", before, after)
	}
	if _, err := repository.Init(t.Context(), r.Backend(), pass, repository.Options{KDF: fastKDF}); !errors.Is(err, repository.ErrAlreadyExists) {
		t.Fatalf("init over a repository: %v", err)
	}
	if _, err := repository.Init(t.Context(), r.Backend(), []byte("short"), repository.Options{}); err == nil || !strings.Contains(err.Error(), "16") {
		t.Fatalf("short passphrase: %v", err)
	}
}

func TestPassphraseChangeRewrapsTheKeyOnly(t *testing.T) {
	src := sourceTree(t, 12)
	r := newRepo(t)
	if _, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{}); err != nil {
		t.Fatal(err)
	}
	before := objects(t, r.Backend())
	newPass := []byte("a brand new passphrase, long enough")
	if err := r.ChangePassphrase(t.Context(), newPass, repository.Options{KDF: fastKDF}); err != nil {
		t.Fatal(err)
	}
	after := objects(t, r.Backend())
	var changed []string
	for _, n := range append(slices.Clone(before), after...) {
		if !slices.Contains(before, n) || !slices.Contains(after, n) {
			changed = append(changed, n)
		}
	}
	if len(changed) != 2 || !strings.HasPrefix(changed[0], "keys/") || !strings.HasPrefix(changed[1], "keys/") {
		t.Fatalf("a passphrase change touched %v; want one key file replaced and nothing else", changed)
	}
	if _, err := repository.Open(t.Context(), r.Backend(), pass, repository.Options{}); !errors.Is(err, repository.ErrWrongPassphrase) {
		t.Fatalf("old passphrase still opens: %v", err)
	}
	if _, err := repository.Open(t.Context(), r.Backend(), newPass, repository.Options{}); err != nil {
		t.Fatalf("new passphrase: %v", err)
	}
}

// damage flips one byte in the middle of the first data pack found, by
// rewriting it in place (only possible on a local repository).
func damage(t *testing.T, r *repository.Repository, repoDir string, truncate bool) {
	t.Helper()
	var victim string
	r.Backend().List(t.Context(), "data/", func(fi storage.Info) error {
		if victim == "" && fi.Size > 200<<10 {
			victim = fi.Name
		}
		return nil
	})
	p := filepath.Join(repoDir, filepath.FromSlash(victim))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if truncate {
		b = b[:len(b)/3]
		// Keep the header readable is impossible after truncation; the index still knows the blobs.
	} else {
		b[len(b)/4] ^= 0x40
	}
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedPackFailsOnlyTheFilesThatNeedIt(t *testing.T) {
	for _, truncate := range []bool{false, true} {
		name := map[bool]string{false: "bit flip", true: "truncation"}[truncate]
		t.Run(name, func(t *testing.T) {
			src := sourceTree(t, 13)
			r := newRepo(t)
			res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
			if err != nil {
				t.Fatal(err)
			}
			damage(t, r, r.Backend().Location(), truncate)
			r = reopen(t, r)

			dst := t.TempDir()
			out, err := restorer.Restore(t.Context(), r, res.Point, restorer.Options{Target: dst})
			if err != nil {
				t.Fatalf("restore stopped instead of restoring what it could: %v", err)
			}
			if len(out.Failed) == 0 {
				t.Fatal("a damaged pack went unnoticed")
			}
			for _, f := range out.Failed {
				if _, err := os.Lstat(f.Path); err == nil {
					t.Errorf("%s failed but was left on disk", f.Path)
				}
			}
			if out.Files == 0 {
				t.Fatal("nothing was restored")
			}
			// Every file reported good is byte-identical.
			diffs, _ := treegen.Diff(src, treegen.Restored(dst, src))
			for _, d := range diffs {
				if !strings.Contains(d, "missing in restore") {
					t.Errorf("restored file differs: %s", d)
				}
			}
			if len(diffs) != len(out.Failed) {
				t.Errorf("%d files missing, %d reported failed", len(diffs), len(out.Failed))
			}
		})
	}
}
