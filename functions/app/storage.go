package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/api"
	"github.com/coffer-backup/coffer/functions/jobs"
)

// TableNames are the tables the control plane reads and writes, in the
// order the storage check reads them. Standalone, EnsureTables creates
// them; under the Functions host the Bicep does (infra/core/storage), and
// the app only checks that they are there.
var TableNames = []string{"vaults", "machines", "policies", "points", "pins", "nonces", jobs.TableName, "alerts", "digests", "approvals", "usage"}

// Storage check timing. Right after `azd up` the app's role assignments can
// take minutes to apply, and storage answers 403 meanwhile: the check is
// retried, quickly at first, then every retryMax. Once storage answers it
// is checked again every recheck, so /health does not keep saying "ok"
// about an account that has since become unreachable.
const (
	checkTimeout = 10 * time.Second
	retryMin     = 2 * time.Second
	retryMax     = time.Minute
	recheck      = 5 * time.Minute
	// escalateAfter is how long storage may refuse before the failure is
	// logged as an error (stderr, which the host records as an Error)
	// rather than a warning: propagation takes minutes, not this long.
	escalateAfter = 15 * time.Minute
)

// storageState is the last storage check, for /health.
type storageState struct {
	mu      sync.Mutex
	checked time.Time // zero: not checked yet
	err     error
	since   time.Time // when the current state began
}

func newStorageState() *storageState { return &storageState{} }

func (s *storageState) set(now time.Time, err error) (changed bool, since time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = s.checked.IsZero() || (s.err == nil) != (err == nil)
	if changed {
		s.since = now
	}
	s.checked, s.err = now, err
	return changed, s.since
}

func (s *storageState) get() (checked time.Time, err error, since time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checked, s.err, s.since
}

// EnsureTables creates any missing table. Only standalone: under the
// Functions host the tables come from the Bicep, and the app's role may
// not even allow creating them while its assignment propagates.
func (a *App) EnsureTables(ctx context.Context) error {
	for _, f := range a.ensure {
		if err := f(ctx); err != nil {
			err = fmt.Errorf("prepare tables: %w", err)
			a.storage.set(a.Clock.Now(), err)
			return err
		}
	}
	a.storage.set(a.Clock.Now(), nil)
	return nil
}

// CheckStorage reads one row of each table, creating nothing. It says
// which table failed and what to do about the usual causes.
func (a *App) CheckStorage(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, name := range TableNames {
		pager := a.tables.NewClient(name).NewListEntitiesPager(&aztables.ListEntitiesOptions{Top: to.Ptr[int32](1), Select: to.Ptr("RowKey")})
		if _, err := pager.NextPage(ctx); err != nil {
			return explainStorage(name, err)
		}
	}
	return nil
}

func explainStorage(table string, err error) error {
	var re *azcore.ResponseError
	switch {
	case errors.As(err, &re) && re.ErrorCode == string(aztables.TableNotFound):
		return fmt.Errorf("table %q does not exist: under the Functions host the tables come from the Bicep (infra/core/storage/storage.bicep); run `azd provision`: %w", table, err)
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("storage refused to read table %q (403): the app identity's Storage Table Data Contributor role can take several minutes to apply after `azd up`; if this lasts, check the role assignment and the account's network rules: %w", table, err)
	case errors.As(err, &re):
		return fmt.Errorf("read table %q: %w", table, err)
	default:
		return fmt.Errorf("storage is unreachable (reading table %q); check COFFER_STORAGE_TABLE_ENDPOINT or the connection string and the network: %w", table, err)
	}
}

// WatchStorage checks storage until ctx ends: at once, then with backoff
// while it fails, then every few minutes. It never creates anything. The
// result is what /health reports; requests are served all along, and
// those that need storage fail on their own until it answers.
func (a *App) WatchStorage(ctx context.Context) {
	wait := retryMin
	for {
		err := a.CheckStorage(ctx)
		if ctx.Err() != nil {
			return
		}
		now := a.Clock.Now()
		changed, since := a.storage.set(now, err)
		next := recheck
		switch {
		case err == nil:
			if changed {
				a.Log.Info("storage answers; every table is there", "tables", len(TableNames))
			}
			wait = retryMin
		case now.Sub(since) >= escalateAfter:
			a.Log.Error("storage still unusable; requests that need it fail until it answers", "since", since, "err", err)
			next, wait = wait, min(wait*2, retryMax)
		default:
			// Expected for a while after a deployment: a warning, which
			// goes to stdout (the host logs stderr lines as errors).
			a.Log.Warn("storage not usable yet; retrying in the background", "since", since, "retry_in", wait, "err", err)
			next, wait = wait, min(wait*2, retryMax)
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// health is /health's view of the dependencies the app checks.
func (a *App) health() map[string]api.Dependency {
	checked, err, since := a.storage.get()
	d := api.Dependency{OK: err == nil && !checked.IsZero()}
	switch {
	case checked.IsZero():
		d.Error = "not checked yet; the first check is under way"
	case err != nil:
		d.Error = err.Error()
	}
	if !checked.IsZero() {
		c, s := checked.UTC(), since.UTC()
		d.Checked, d.Since = &c, &s
	}
	return map[string]api.Dependency{"storage": d}
}
