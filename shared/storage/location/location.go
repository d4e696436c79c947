// Package location opens the repository a user names: a container URL with
// a SAS, or a folder path.
package location

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/azureblob"
	"github.com/coffer-backup/coffer/shared/storage/local"
)

// scheme matches "name://" at the start; a Windows path (C:\, C:/) does not.
var scheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// Open opens repo: an http:// or https:// URL is an Azure Blob container
// with a SAS, anything else a folder (created if missing). It contacts no
// server; ctx is for backends that will.
func Open(ctx context.Context, repo string) (storage.Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	repo = strings.TrimSpace(repo)
	if repo == "" {
		return nil, errors.New("no repository given: name a folder, or an Azure container URL with a SAS (https://ACCOUNT.blob.core.windows.net/CONTAINER?sv=…)")
	}
	if m := scheme.FindStringSubmatch(repo); m != nil {
		switch strings.ToLower(m[1]) {
		case "http", "https":
			b, err := azureblob.New(repo, azureblob.Options{})
			if err != nil {
				return nil, fmt.Errorf("repository: %w", err)
			}
			return b, nil
		}
		// Taking "s3://x" for a folder named "s3:" would only confuse.
		return nil, fmt.Errorf("repository %s: %s:// repositories are not supported; use an https:// Azure container URL with a SAS, or a folder path", m[1]+"://…", m[1])
	}
	if fi, err := os.Stat(repo); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("repository %s is a file, not a folder; give the repository's folder", repo)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("repository %s: %w", repo, err)
	}
	b, err := local.New(repo)
	if err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	return b, nil
}
