// Package repository reads and writes Coffer's repository format on any
// storage.Backend: the config and key files, packs of encrypted blobs, the
// index that says which pack holds which blob, recovery points and their
// plaintext pack reference lists. docs/repository-format.md describes it.
//
// Writing never replaces or deletes an object, so backups work with
// create-only credentials and an interrupted backup leaves the repository
// as valid as it was.
package repository

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
)

// FormatVersion is the repository format this build writes at init. It
// reads version 1 too, and writes a version 1 repository as version 1
// writers do (no groups), so older releases can still read it until it
// is upgraded (UpgradeFormat).
const FormatVersion = 2

// keyFileVersion is the key files' format, unchanged since version 1.
const keyFileVersion = 1

// DefaultPackSize is the size a pack is closed at. Azure bills per call, so
// packs are large; a backup holds about three in memory (one filling, two
// uploading), so they are not larger. 16 MiB costs under half a dollar of
// write calls per TiB and keeps a backup's memory below restic's.
const DefaultPackSize = 16 << 20

// Config is the repository's plaintext settings, fixed at init except
// Compression, which SetCompression changes for new data.
type Config struct {
	Version  int            `json:"version"`
	ID       string         `json:"id"`
	Created  time.Time      `json:"created"`
	Chunker  chunker.Params `json:"chunker"`
	PackSize int            `json:"packSize"`
	// Compression is how hard new blobs are compressed. Configs written
	// before it existed have none: auto.
	Compression compress.Mode `json:"compression"`
}

// keyFile is keys/<ID>: the master key wrapped by the passphrase.
type keyFile struct {
	Version  int                `json:"version"`
	Created  time.Time          `json:"created"`
	Hostname string             `json:"hostname,omitempty"`
	Wrapped  *crypto.WrappedKey `json:"wrapped"`
}

// Errors callers tell apart.
var (
	ErrWrongPassphrase = errors.New("wrong passphrase: no key in the repository opens with it")
	ErrNotRepository   = errors.New("no Coffer repository here: create one with `coffer init`")
	ErrAlreadyExists   = errors.New("a Coffer repository already exists here")
)

// Repository is an open repository.
type Repository struct {
	be    storage.Backend
	key   *crypto.Key
	cfg   Config
	keyID string // the key file that opened it
	now   func() time.Time
	index *Index
	// indexFiles are the index files LoadIndex read, sorted: SavePoint
	// compares them with what is stored to notice a prune (maintenance.go).
	indexFiles []string
	// pruneWait and pruneWaiting are Options.PruneWait and PruneWaiting.
	pruneWait    time.Duration
	pruneWaiting func(PruneLockInfo)
}

// Options tune Init and Open.
type Options struct {
	Now      func() time.Time  // the clock; nil means time.Now
	KDF      *crypto.KDFParams // Init only; nil means crypto.DefaultKDFParams
	PackSize int               // Init only; 0 means DefaultPackSize
	Chunker  *chunker.Params   // Init only; nil means chunker.DefaultParams
	Hostname string            // recorded in the key file
	// Compression is Init's compression mode; the zero value is auto.
	Compression compress.Mode
	// PruneWait is how long SavePoint waits for a prune that holds the
	// lock to finish before it refuses the point; zero refuses at once.
	// PruneWaiting, if set, is told once when such a wait begins.
	PruneWait    time.Duration
	PruneWaiting func(PruneLockInfo)
}

func (o Options) clock() func() time.Time {
	if o.Now != nil {
		return o.Now
	}
	return time.Now
}

// Init creates a repository: a config and a key file wrapping a new random
// master key with the passphrase.
func Init(ctx context.Context, be storage.Backend, passphrase []byte, o Options) (*Repository, error) {
	if err := crypto.CheckPassphrase(passphrase); err != nil {
		return nil, err
	}
	if _, err := be.Stat(ctx, layout.Config); err == nil {
		return nil, fmt.Errorf("%w at %s", ErrAlreadyExists, be.Location())
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("look for an existing repository at %s: %w", be.Location(), err)
	}
	key, err := crypto.NewKey()
	if err != nil {
		return nil, err
	}
	now := o.clock()
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	cfg := Config{Version: FormatVersion, ID: hex.EncodeToString(id), Created: now().UTC(), Chunker: chunker.DefaultParams, PackSize: DefaultPackSize, Compression: o.Compression}
	if o.Chunker != nil {
		cfg.Chunker = *o.Chunker
	}
	if o.PackSize > 0 {
		cfg.PackSize = o.PackSize
	}
	if err := cfg.Chunker.Validate(); err != nil {
		return nil, err
	}
	if _, err := cfg.Compression.MarshalText(); err != nil {
		return nil, err
	}
	r := &Repository{be: be, key: key, cfg: cfg, now: now, index: NewIndex()}
	// The key file first: a config without a key would be a repository no
	// one can open.
	keyID, err := r.writeKeyFile(ctx, passphrase, o)
	if err != nil {
		return nil, err
	}
	r.keyID = keyID
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := be.Create(ctx, layout.Config, b); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nil, fmt.Errorf("%w at %s", ErrAlreadyExists, be.Location())
		}
		return nil, fmt.Errorf("write repository config: %w", err)
	}
	return r, nil
}

func (r *Repository) writeKeyFile(ctx context.Context, passphrase []byte, o Options) (string, error) {
	var params crypto.KDFParams
	if o.KDF != nil {
		params = *o.KDF
		params.Salt = make([]byte, 16)
		if _, err := rand.Read(params.Salt); err != nil {
			return "", err
		}
	} else {
		p, err := crypto.DefaultKDFParams()
		if err != nil {
			return "", err
		}
		params = p
	}
	w, err := crypto.Wrap(r.key, passphrase, params)
	if err != nil {
		return "", fmt.Errorf("wrap the repository key: %w", err)
	}
	host := o.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	b, err := json.MarshalIndent(keyFile{Version: keyFileVersion, Created: r.now().UTC(), Hostname: host, Wrapped: w}, "", "  ")
	if err != nil {
		return "", err
	}
	id := hashID(b)
	if err := r.be.Create(ctx, layout.Key(id), b); err != nil {
		return "", fmt.Errorf("write key file: %w", err)
	}
	return id, nil
}

// Open reads the config and unwraps the master key with the passphrase,
// trying every key file. It writes nothing.
func Open(ctx context.Context, be storage.Backend, passphrase []byte, o Options) (*Repository, error) {
	b, err := storage.ReadAll(ctx, be, layout.Config)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w (%s)", ErrNotRepository, be.Location())
	}
	if err != nil {
		return nil, fmt.Errorf("read repository config at %s: %w", be.Location(), err)
	}
	cfg, err := decodeConfig(b)
	if err != nil {
		return nil, fmt.Errorf("repository config at %s: %w", be.Location(), err)
	}
	r := &Repository{be: be, cfg: cfg, now: o.clock(), index: NewIndex(), pruneWait: o.PruneWait, pruneWaiting: o.PruneWaiting}
	var tried int
	var lastErr error
	err = be.List(ctx, layout.KeysPrefix, func(fi storage.Info) error {
		if fi.Size > 64<<10 {
			return nil // not a key file we wrote
		}
		kb, err := storage.ReadAll(ctx, be, fi.Name)
		if err != nil {
			return fmt.Errorf("read key file %s: %w", fi.Name, err)
		}
		var kf keyFile
		if err := json.Unmarshal(kb, &kf); err != nil || kf.Wrapped == nil {
			lastErr = fmt.Errorf("key file %s is damaged", fi.Name)
			return nil
		}
		tried++
		key, err := crypto.Unwrap(kf.Wrapped, passphrase)
		if err != nil {
			if !errors.Is(err, crypto.ErrWrongPassphrase) {
				lastErr = fmt.Errorf("key file %s: %w", fi.Name, err)
			}
			return nil
		}
		r.key, r.keyID = key, strings.TrimPrefix(fi.Name, layout.KeysPrefix)
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if r.key == nil {
		if tried == 0 && lastErr != nil {
			return nil, lastErr
		}
		if tried == 0 {
			return nil, fmt.Errorf("repository at %s has no key file", be.Location())
		}
		return nil, ErrWrongPassphrase
	}
	return r, nil
}

var errStop = errors.New("stop")

// decodeConfig parses and checks a config object. A compression mode this
// build does not know (written by a newer release) is not an error: the
// setting only steers how new data is written, every mode writes the same
// format, so such a repository is read as usual and written as with auto.
func decodeConfig(b []byte) (Config, error) {
	var raw struct {
		Config
		Compression *string `json:"compression"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Config{}, fmt.Errorf("damaged: %w", err)
	}
	cfg := raw.Config
	if raw.Compression != nil {
		m, err := compress.ParseMode(*raw.Compression)
		if err != nil {
			slog.Warn("repository config: compression mode unknown to this Coffer; new data is compressed as with auto", "compression", *raw.Compression)
		}
		cfg.Compression = m
	}
	if cfg.Version < 1 || cfg.Version > FormatVersion {
		return Config{}, fmt.Errorf("format version %d; this Coffer reads versions 1 to %d: use a newer Coffer release", cfg.Version, FormatVersion)
	}
	if err := cfg.Chunker.Validate(); err != nil {
		return Config{}, err
	}
	if cfg.PackSize < 1<<20 || cfg.PackSize > 1<<30 {
		return Config{}, fmt.Errorf("unusable pack size %d", cfg.PackSize)
	}
	return cfg, nil
}

// SetCompression changes how new data is compressed, by replacing the
// config object; data already stored keeps its compression and stays
// readable, since every blob records its own method. It needs storage that
// can replace an object (a local folder, or a SAS with write permission);
// backups already running keep the mode they started with.
func (r *Repository) SetCompression(ctx context.Context, m compress.Mode) error {
	if _, err := m.MarshalText(); err != nil {
		return err
	}
	return r.replaceConfig(ctx, "its compression cannot change", func(cfg *Config) { cfg.Compression = m })
}

// UpgradeFormat makes a version 1 repository version 2, whose writers
// store small blobs in groups; releases before version 2 can no longer
// open it. Nothing stored is rewritten. A version 2 repository is left
// as it is.
func (r *Repository) UpgradeFormat(ctx context.Context) error {
	return r.replaceConfig(ctx, "its format cannot be upgraded", func(cfg *Config) { cfg.Version = max(cfg.Version, 2) })
}

// Groups reports whether writers store small data blobs in groups:
// format version 2 on.
func (c Config) Groups() bool { return c.Version >= 2 }

// replaceConfig changes the stored config with change and replaces it.
func (r *Repository) replaceConfig(ctx context.Context, what string, change func(*Config)) error {
	rp, ok := r.be.(replacer)
	if !ok {
		return fmt.Errorf("%s cannot replace the repository config, so %s: %w", r.be.Location(), what, storage.ErrPermission)
	}
	// Re-read the stored config, so that only the compression changes even
	// if this Repository was opened long ago.
	b, err := storage.ReadAll(ctx, r.be, layout.Config)
	if err != nil {
		return fmt.Errorf("read repository config at %s: %w", r.be.Location(), err)
	}
	cfg, err := decodeConfig(b)
	if err != nil {
		return fmt.Errorf("repository config at %s: %w", r.be.Location(), err)
	}
	change(&cfg)
	b, _ = json.MarshalIndent(cfg, "", "  ")
	if err := rp.Replace(ctx, layout.Config, b); err != nil {
		return fmt.Errorf("replace the repository config at %s: %w", r.be.Location(), err)
	}
	r.cfg = cfg
	return nil
}

// ChangePassphrase writes a new key file wrapping the same master key with
// newPassphrase, then deletes the key file that opened the repository. No
// data is re-encrypted. If the delete is refused (create-only credentials),
// the new key file is kept and the error says the old passphrase still works.
func (r *Repository) ChangePassphrase(ctx context.Context, newPassphrase []byte, o Options) error {
	if err := crypto.CheckPassphrase(newPassphrase); err != nil {
		return err
	}
	old := r.keyID
	id, err := r.writeKeyFile(ctx, newPassphrase, o)
	if err != nil {
		return err
	}
	r.keyID = id
	if err := r.be.Delete(ctx, layout.Key(old)); err != nil {
		return fmt.Errorf("the new passphrase works, but the old key file keys/%s could not be deleted, so the old passphrase still works too: %w", old, err)
	}
	return nil
}

// AddKey wraps the master key with a new passphrase in a new key file and
// returns the ID of the key file that opened the repository, without
// deleting it: where the agent may not delete (a vault's create-only
// storage), the control plane retires the old key file after checking the
// new one exists.
func (r *Repository) AddKey(ctx context.Context, newPassphrase []byte, o Options) (oldKeyID string, err error) {
	if err := crypto.CheckPassphrase(newPassphrase); err != nil {
		return "", err
	}
	old := r.keyID
	id, err := r.writeKeyFile(ctx, newPassphrase, o)
	if err != nil {
		return "", err
	}
	r.keyID = id
	return old, nil
}

// Config is the repository's settings.
func (r *Repository) Config() Config { return r.cfg }

// Key is the master key.
func (r *Repository) Key() *crypto.Key { return r.key }

// KeyID is the key file that opened the repository, or the one AddKey
// wrote: the replacement a passphrase change names to the control plane.
func (r *Repository) KeyID() string { return r.keyID }

// Backend is where the repository lives.
func (r *Repository) Backend() storage.Backend { return r.be }

// Index is the in-memory index; LoadIndex fills it.
func (r *Repository) Index() *Index { return r.index }

// Now is the repository's clock.
func (r *Repository) Now() time.Time { return r.now() }

// hashID names content-addressed objects: SHA-256 of the stored bytes, so
// anyone can verify an object against its name without the key.
func hashID(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Associated data binds each sealed object to its role, so one can't be
// passed off as another.
var (
	adPackHeader = []byte("coffer/pack-header/v1")
	adIndex      = []byte("coffer/index/v1")
	adPoint      = []byte("coffer/point/v1")
)

func blobAD(t BlobType, id crypto.ID) []byte {
	ad := make([]byte, 0, 20+1+len(id))
	ad = append(ad, "coffer/blob/v1"...)
	ad = append(ad, byte(t))
	return append(ad, id[:]...)
}

// readRange reads a byte range of an object.
func (r *Repository) readRange(ctx context.Context, buf []byte, name string, off, n int64) ([]byte, error) {
	rc, err := r.be.Read(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if f, ok := rc.(storage.FullReader); ok {
		buf, err = f.ReadFullInto(buf)
		if err == nil && int64(len(buf)) != n {
			err = fmt.Errorf("%d bytes where %d were asked", len(buf), n)
		}
	} else {
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		_, err = io.ReadFull(rc, buf)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s [%d, +%d): %w", name, off, n, err)
	}
	return buf, nil
}
