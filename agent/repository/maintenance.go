package repository

// Maintenance that deletes or rewrites: forget and prune, for a repository
// whose credentials allow it (a folder, or a SAS with delete and write).
// Backups never call any of this.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/storage"
)

// PruneLock is the object a prune holds while it runs. Create is
// exclusive, so two prunes cannot run at once, and a backup looks for it
// between writing its pack list and its point (see checkConcurrentPrune).
const PruneLock = "locks/prune"

// PruneLockInfo is what the lock says about its holder, so another
// process can tell a running prune from one that was killed.
type PruneLockInfo struct {
	Hostname  string    `json:"hostname"`
	PID       int       `json:"pid"`
	Time      time.Time `json:"time"`                // when the prune began
	Refreshed time.Time `json:"refreshed,omitempty"` // the holder's last sign of life
}

// A running prune refreshes its lock every PruneLockRefresh where the
// storage can replace objects; a lock not refreshed for PruneLockStale is
// taken as left by a prune killed on another machine, as restic does.
const (
	PruneLockRefresh = 5 * time.Minute
	PruneLockStale   = 30 * time.Minute
)

// ErrPruneRunning means another prune holds the lock.
var ErrPruneRunning = errors.New("another prune is running on this repository")

// stale reports whether a lock was left by a prune that no longer runs:
// one of this host whose process is gone, or one that has not been
// refreshed for PruneLockStale.
func (r *Repository) stale(held *PruneLockInfo) bool {
	host, _ := os.Hostname()
	if held.Hostname == host && !processAlive(held.PID) {
		return true
	}
	last := held.Time
	if held.Refreshed.After(last) {
		last = held.Refreshed
	}
	return !last.IsZero() && r.now().Sub(last) > PruneLockStale
}

// AcquirePruneLock creates the prune lock and keeps it refreshed. A stale
// lock (see stale) is taken over; any other refuses with ErrPruneRunning,
// saying who holds it. The returned function stops the refresh and
// deletes the lock.
func (r *Repository) AcquirePruneLock(ctx context.Context) (release func(context.Context) error, err error) {
	host, _ := os.Hostname()
	info := PruneLockInfo{Hostname: host, PID: os.Getpid(), Time: r.now().UTC()}
	b, _ := json.Marshal(info)
	for attempt := 0; attempt < 2; attempt++ {
		err := r.be.Create(ctx, PruneLock, b)
		if err == nil {
			return r.refreshPruneLock(info), nil
		}
		if !storage.IsExists(err) {
			return nil, fmt.Errorf("take the prune lock %s: %w", PruneLock, deleteHint(err))
		}
		held, herr := r.readPruneLock(ctx)
		if herr != nil {
			return nil, herr
		}
		if held == nil {
			continue // released meanwhile
		}
		if !r.stale(held) {
			return nil, fmt.Errorf("%w: %s (process %d on %s, since %s); wait for it to finish (a lock not refreshed for %v is taken as a killed prune's), or if it was killed on another machine, delete %s from the repository",
				ErrPruneRunning, PruneLock, held.PID, held.Hostname, held.Time.Format(time.RFC3339), PruneLockStale, PruneLock)
		}
		// A prune that no longer runs: killed. What it left is sound (see
		// the prune package); take its lock over.
		if err := r.be.Delete(ctx, PruneLock); err != nil && !storage.IsNotFound(err) {
			return nil, fmt.Errorf("remove the stale prune lock of process %d on %s: %w", held.PID, held.Hostname, deleteHint(err))
		}
	}
	return nil, fmt.Errorf("%w: the prune lock %s keeps changing", ErrPruneRunning, PruneLock)
}

// refreshPruneLock rewrites the lock's Refreshed time every
// PruneLockRefresh until release, which then deletes the lock.
func (r *Repository) refreshPruneLock(info PruneLockInfo) func(context.Context) error {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		rp, ok := r.be.(replacer)
		if !ok {
			return
		}
		t := time.NewTicker(PruneLockRefresh)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				info.Refreshed = r.now().UTC()
				b, _ := json.Marshal(info)
				_ = rp.Replace(context.Background(), PruneLock, b) // a missed refresh is retried at the next tick
			}
		}
	}()
	// Releasing twice deletes once: a second delete could remove the lock
	// of a prune that started meanwhile. A failed delete may be retried.
	var (
		mu       sync.Mutex
		released bool
		stopOnce sync.Once
	)
	return func(ctx context.Context) error {
		stopOnce.Do(func() { close(stop); <-done })
		mu.Lock()
		defer mu.Unlock()
		if released {
			return nil
		}
		if err := r.be.Delete(ctx, PruneLock); err != nil && !storage.IsNotFound(err) {
			return fmt.Errorf("remove the prune lock %s: %w; backups wait for it, then are refused, until it is gone: delete it by hand", PruneLock, err)
		}
		released = true
		return nil
	}
}

// readPruneLock reads the lock; nil without error means there is none.
func (r *Repository) readPruneLock(ctx context.Context) (*PruneLockInfo, error) {
	b, err := storage.ReadAll(ctx, r.be, PruneLock)
	if storage.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the prune lock %s: %w", PruneLock, err)
	}
	var info PruneLockInfo
	if err := json.Unmarshal(b, &info); err != nil {
		// Unreadable: someone else's, still held. Say so without guessing.
		return &PruneLockInfo{Hostname: "(unreadable lock)"}, nil
	}
	return &info, nil
}

// processAlive reports whether a process of this host exists.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	defer p.Release()
	// On Unix FindProcess always succeeds; signal 0 asks without signalling.
	// Elsewhere FindProcess opened the process, so it exists.
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM) || isWindowsProcess(err)
}

func isWindowsProcess(err error) bool {
	// os.Process.Signal on Windows supports only Kill; any other signal
	// fails with this error although the process exists.
	return err != nil && strings.Contains(err.Error(), "not supported by windows")
}

// ErrConcurrentPrune refuses a point whose packs a prune may have removed.
var ErrConcurrentPrune = errors.New("a prune ran on the repository during this backup")

// checkConcurrentPrune runs between a point's pack list and the point
// itself. A prune holds PruneLock while it deletes, and before deleting it
// reads every pack list it had not seen: so either the prune saw this
// list (and kept its packs), or the lock is there now, or the prune is
// over and the packs this point needs are either still stored or gone for
// good. The last case is told by the index files LoadIndex read: a prune
// that deleted anything replaced them.
func (r *Repository) checkConcurrentPrune(ctx context.Context, packs []crypto.ID) error {
	held, err := r.waitForPrune(ctx)
	if err != nil {
		return err
	}
	if held != nil {
		waited := ""
		if r.pruneWait > 0 {
			waited = fmt.Sprintf(" and still ran after %v of waiting", r.pruneWait)
		}
		return fmt.Errorf("%w (process %d on %s, since %s)%s: it may remove data this backup reuses, so the point was not saved; run the backup again once the prune is over (or, if no prune runs, delete %s from the repository)",
			ErrConcurrentPrune, held.PID, held.Hostname, held.Time.Format(time.RFC3339), waited, PruneLock)
	}
	if r.indexFiles == nil {
		return nil // the index was never loaded: a new repository, nothing reused
	}
	now, err := r.IndexFiles(ctx)
	if err != nil {
		return err
	}
	if !containsAll(now, r.indexFiles) {
		for _, pk := range packs {
			if _, err := r.be.Stat(ctx, PackName(pk)); storage.IsNotFound(err) {
				return fmt.Errorf("%w and removed pack %s that this backup reuses, so the point was not saved; run the backup again", ErrConcurrentPrune, pk)
			} else if err != nil {
				return fmt.Errorf("check that pack %s is still stored: %w", pk, err)
			}
		}
	}
	return nil
}

// pruneWaitPoll is how often a point waiting for a prune looks at the lock.
var pruneWaitPoll = 5 * time.Second

// waitForPrune returns the lock of a running prune, after waiting up to
// r.pruneWait for it to go, or nil once no live prune holds it. Waiting is
// safe: the point's list is already stored, so a prune that lists it keeps
// its packs, and one that did not is caught by the index files' check that
// follows.
func (r *Repository) waitForPrune(ctx context.Context) (*PruneLockInfo, error) {
	deadline := r.now().Add(r.pruneWait)
	told := false
	for {
		held, err := r.readPruneLock(ctx)
		if err != nil {
			return nil, err
		}
		if held == nil || r.stale(held) {
			return nil, nil // none, or left by a killed prune: what it left is sound
		}
		if !r.now().Before(deadline) {
			return held, nil
		}
		if !told && r.pruneWaiting != nil {
			r.pruneWaiting(*held)
			told = true
		}
		t := time.NewTimer(pruneWaitPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// dropRefused deletes the pack list of a point SavePoint refused, if the
// credentials allow: left alone, it would keep its packs from every prune.
// Under create-only credentials (a vault) it stays, an orphan list the
// control plane's purge handles.
func (r *Repository) dropRefused(ctx context.Context, point string) {
	_ = r.be.Delete(context.WithoutCancel(ctx), layout.Refs(point))
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if _, ok := slices.BinarySearch(have, w); !ok {
			return false
		}
	}
	return true
}

// IndexFiles lists the index files, sorted.
func (r *Repository) IndexFiles(ctx context.Context) ([]string, error) {
	var names []string
	if err := r.be.List(ctx, layout.IndexPrefix, func(fi storage.Info) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list index files: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// LoadedIndexFiles are the index files the last LoadIndex read, sorted.
func (r *Repository) LoadedIndexFiles() []string { return slices.Clone(r.indexFiles) }

// DeletePoint removes a recovery point: points/<id> first, then its pack
// list, the order the format requires, so a stop in between leaves an
// orphan list (which only keeps packs) and never a point without its list.
func (r *Repository) DeletePoint(ctx context.Context, id string) error {
	if !layout.ValidID(id) {
		return fmt.Errorf("%q is not a point ID", id)
	}
	if err := r.be.Delete(ctx, layout.Point(id)); err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("delete point %s: %w", id, deleteHint(err))
	}
	if err := r.be.Delete(ctx, layout.Refs(id)); err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("point %s is deleted, but not its pack list %s, which keeps its packs until removed: %w", id, layout.Refs(id), deleteHint(err))
	}
	return nil
}

// Delete removes one object; a missing one is not an error.
func (r *Repository) Delete(ctx context.Context, name string) error {
	if err := r.be.Delete(ctx, name); err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, deleteHint(err))
	}
	return nil
}

func deleteHint(err error) error {
	if storage.IsPermission(err) {
		return fmt.Errorf("%w (forget and prune need delete rights: a folder you may write, or a SAS with delete \"d\" and write \"w\")", err)
	}
	return err
}

// ReadRefs reads and validates a point's pack list.
func (r *Repository) ReadRefs(ctx context.Context, point string) ([]crypto.ID, error) {
	b, err := storage.ReadAll(ctx, r.be, layout.Refs(point))
	if err != nil {
		return nil, fmt.Errorf("read the pack list of point %s: %w", point, err)
	}
	refs, err := packrefs.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: pack list of point %s: %v", ErrDamaged, point, err)
	}
	if refs.Point != point {
		return nil, fmt.Errorf("%w: pack list refs/%s names point %s", ErrDamaged, point, refs.Point)
	}
	out := make([]crypto.ID, len(refs.Packs))
	for i, s := range refs.Packs {
		hex.Decode(out[i][:], []byte(s)) // Decode checked the digits
	}
	return out, nil
}

// replacer is a backend that can atomically replace an object.
type replacer interface {
	Replace(ctx context.Context, name string, data []byte) error
}

// ErrCannotReplace means the storage offers no atomic replace.
var ErrCannotReplace = errors.New("this storage cannot replace a point's pack list atomically")

// CanReplace reports whether ReplaceRefs can work on this storage.
func (r *Repository) CanReplace() bool {
	_, ok := r.be.(replacer)
	return ok
}

// ReplaceRefs atomically rewrites a point's pack list, which must exist.
// Prune calls it after repacking, once every pack in the new list and an
// index naming them are stored, and before deleting any pack the old list
// named: at every moment the point has a list naming packs that exist.
func (r *Repository) ReplaceRefs(ctx context.Context, point string, packs []crypto.ID) error {
	rp, ok := r.be.(replacer)
	if !ok {
		return fmt.Errorf("%w (%s)", ErrCannotReplace, r.be.Location())
	}
	names := make([]string, len(packs))
	for i, pk := range packs {
		names[i] = hex.EncodeToString(pk[:])
	}
	b, err := packrefs.New(point, names).Encode()
	if err != nil {
		return err
	}
	if err := rp.Replace(ctx, layout.Refs(point), b); err != nil {
		return fmt.Errorf("rewrite the pack list of point %s: %w", point, deleteHint(err))
	}
	return nil
}

// indexPacksPerFile bounds one index file, so none grows without limit.
const indexPacksPerFile = 1024

// WriteIndex writes index files naming exactly these packs, which must be
// stored, and returns their names. Prune writes the whole index anew this
// way before it deletes the index files it replaces.
func (r *Repository) WriteIndex(ctx context.Context, packs map[crypto.ID]*PackInfo) ([]string, error) {
	ids := make([]crypto.ID, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b crypto.ID) int { return strings.Compare(string(a[:]), string(b[:])) })
	var names []string
	for len(ids) > 0 {
		n := min(len(ids), indexPacksPerFile)
		var f indexFile
		for _, id := range ids[:n] {
			p := packs[id]
			f.Packs = append(f.Packs, indexPack{ID: id, Size: p.Size, Blobs: p.Blobs})
		}
		ids = ids[n:]
		plain, err := encMode.Marshal(&f)
		if err != nil {
			return names, fmt.Errorf("encode index: %w", err)
		}
		sealed, id := r.seal(plain, adIndex)
		if err := r.create(ctx, layout.Index(id), sealed); err != nil {
			return names, fmt.Errorf("write index: %w", err)
		}
		names = append(names, layout.Index(id))
	}
	return names, nil
}
