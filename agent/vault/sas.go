package vault

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/azureblob"
	"github.com/coffer-backup/coffer/shared/wire"
)

// renewBefore is how long before its expiry a SAS is replaced: longer than
// any single upload, so no request starts with a token about to die.
const renewBefore = 10 * time.Minute

// sasBackend is the machine's container, reached with SAS tokens from the
// control plane, renewed before they expire.
type sasBackend struct {
	grant func(ctx context.Context) (wire.SAS, error)
	now   func() time.Time
	opts  azureblob.Options

	mu      sync.Mutex
	be      *azureblob.Backend
	expires time.Time
	loc     string
}

var _ storage.Backend = (*sasBackend)(nil)

func (s *sasBackend) current(ctx context.Context) (*azureblob.Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.be != nil && s.now().Before(s.expires.Add(-renewBefore)) {
		return s.be, nil
	}
	g, err := s.grant(ctx)
	if err != nil {
		if s.be != nil && s.now().Before(s.expires) {
			return s.be, nil // the old token still works; renew on the next call
		}
		return nil, fmt.Errorf("get a storage token from the control plane: %w", err)
	}
	be, err := azureblob.New(g.ContainerURL+"?"+g.SAS, s.opts)
	if err != nil {
		return nil, err
	}
	s.be, s.expires, s.loc = be, g.ExpiresOn, be.Location()
	return be, nil
}

func (s *sasBackend) Create(ctx context.Context, name string, data []byte) error {
	be, err := s.current(ctx)
	if err != nil {
		return err
	}
	return be.Create(ctx, name, data)
}

func (s *sasBackend) Read(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	be, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return be.Read(ctx, name, off, n)
}

func (s *sasBackend) Stat(ctx context.Context, name string) (storage.Info, error) {
	be, err := s.current(ctx)
	if err != nil {
		return storage.Info{}, err
	}
	return be.Stat(ctx, name)
}

func (s *sasBackend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	be, err := s.current(ctx)
	if err != nil {
		return err
	}
	return be.List(ctx, prefix, fn)
}

// Delete is refused: the agent's tokens never allow it, by design.
func (s *sasBackend) Delete(ctx context.Context, name string) error {
	return fmt.Errorf("%w: an agent never deletes from its vault's storage (%s)", storage.ErrPermission, name)
}

func (s *sasBackend) Location() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loc == "" {
		return "vault container"
	}
	return s.loc
}
