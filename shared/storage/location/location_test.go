package location_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage/azureblob"
	"github.com/coffer-backup/coffer/shared/storage/local"
	"github.com/coffer-backup/coffer/shared/storage/location"
)

const sasQuery = "sv=2024-08-04&sr=c&sp=crl&sig=SECRETSIG"

func TestURLOpensAzureBlob(t *testing.T) {
	for _, u := range []string{
		"https://acct.blob.core.windows.net/backups?" + sasQuery,
		"HTTP://127.0.0.1:10000/devstoreaccount1/backups?" + sasQuery,
	} {
		b, err := location.Open(t.Context(), u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if _, ok := b.(*azureblob.Backend); !ok {
			t.Fatalf("Open(%q) = %T, want *azureblob.Backend", u, b)
		}
		if strings.Contains(b.Location(), "SECRETSIG") || strings.Contains(b.Location(), "?") {
			t.Fatalf("Location() = %q shows the SAS", b.Location())
		}
	}
}

func TestPathOpensFolder(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{dir, filepath.Join(dir, "new", "repo"), "  " + filepath.Join(dir, "trimmed") + " "} {
		b, err := location.Open(t.Context(), p)
		if err != nil {
			t.Fatalf("Open(%q): %v", p, err)
		}
		if _, ok := b.(*local.Backend); !ok {
			t.Fatalf("Open(%q) = %T, want *local.Backend", p, b)
		}
		if fi, err := os.Stat(b.Location()); err != nil || !fi.IsDir() {
			t.Fatalf("Open(%q) left no folder at %s: %v", p, b.Location(), err)
		}
	}
}

func TestRelativePathOpensFolder(t *testing.T) {
	t.Chdir(t.TempDir())
	b, err := location.Open(t.Context(), "repo")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(b.Location()) {
		t.Fatalf("Location() = %q, want an absolute path", b.Location())
	}
}

func TestBadInput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, says string }{
		{"", "no repository given"},
		{"   ", "no repository given"},
		{file, "is a file, not a folder"},
		{"https://acct.blob.core.windows.net/backups", "no SAS token"},
		{"https://acct.blob.core.windows.net/?" + sasQuery, "names no container"},
		{"s3://bucket/x", "s3:// repositories are not supported"},
		{"azure://acct/backups?" + sasQuery, "azure:// repositories are not supported"},
	} {
		_, err := location.Open(t.Context(), c.in)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Open(%q): got %v, want an error saying %q", c.in, err, c.says)
		}
		if err != nil && strings.Contains(err.Error(), "SECRETSIG") {
			t.Errorf("Open(%q): error %q shows the signature", c.in, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := location.Open(ctx, t.TempDir()); err == nil {
		t.Fatal("Open with a canceled context succeeded")
	}
}
