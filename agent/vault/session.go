package vault

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/limit"
	"github.com/coffer-backup/coffer/shared/storage/retry"
	"github.com/coffer-backup/coffer/shared/wire"
	"golang.org/x/time/rate"
)

// MinPassphrase is MARS's minimum passphrase length.
const MinPassphrase = 16

// Session is a registered machine talking to its vault.
type Session struct {
	Dir    string
	Config *Config
	Client *cpclient.Client
	Now    func() time.Time
	// Upload, when set, paces uploads (the policy's bandwidth throttling).
	Upload *rate.Limiter
}

// Open loads the registration in dir.
func Open(dir string) (*Session, error) {
	c, key, err := Load(dir)
	if err != nil {
		return nil, err
	}
	return newSession(dir, c, key), nil
}

func newSession(dir string, c *Config, key ed25519.PrivateKey) *Session {
	return &Session{Dir: dir, Config: c, Now: time.Now, Client: &cpclient.Client{
		BaseURL: c.ControlPlaneURL, MachineID: c.MachineID, Key: key,
		HTTP: &http.Client{Timeout: 2 * time.Minute},
	}}
}

// SAS asks the control plane for a token for this machine's container.
func (s *Session) SAS(ctx context.Context) (wire.SAS, error) {
	return s.Client.SAS(ctx)
}

// Backend is the machine's container through renewed SAS tokens, with
// retries for transient failures.
func (s *Session) Backend() storage.Backend {
	var be storage.Backend = &sasBackend{grant: s.SAS, now: s.Now}
	if s.Upload != nil {
		be = limit.New(be, limit.Options{Upload: s.Upload})
	}
	return retry.New(be, retry.Policy{})
}

// Escrow is the machine's passphrase secret.
func (s *Session) Escrow() (*Escrow, error) {
	return NewEscrow(s.Config.KeyVaultURL, s.Config.SecretName, s.Config.TenantID)
}

// Repository opens the machine's repository with the escrowed passphrase.
func (s *Session) Repository(ctx context.Context) (*repository.Repository, error) {
	e, err := s.Escrow()
	if err != nil {
		return nil, err
	}
	pass, err := e.Fetch(ctx, "")
	if err != nil {
		return nil, err
	}
	r, err := repository.Open(ctx, s.Backend(), pass, repository.Options{})
	if errors.Is(err, repository.ErrWrongPassphrase) {
		return nil, fmt.Errorf("%w: the passphrase in Key Vault (%s) does not open this machine's repository; restore the secret's previous version", err, s.Config.SecretName)
	}
	return r, err
}

// ErrNoMachineName: no name was given and the host name could not be read.
var ErrNoMachineName = errors.New("no machine name given, and the host name could not be read")

// ErrSourcePassphrase: the source machine's escrowed passphrase could not
// be fetched; the caller may have the passphrase itself.
var ErrSourcePassphrase = errors.New("the source machine's passphrase could not be fetched from Key Vault")

// RegisterOptions are `coffer register`'s inputs.
type RegisterOptions struct {
	Dir         string
	Credentials []byte // the vault credentials file
	Name        string // machine name; empty means the host name
	Passphrase  []byte // empty means generate one
	OS          string
	Version     string
}

// Register enrols this machine: a new key pair, the control plane's
// registration, the passphrase in Key Vault, and a new repository in the
// machine's container. The passphrase is never sent to the control plane.
func Register(ctx context.Context, o RegisterOptions) (*Session, []byte, error) {
	var cr wire.Credentials
	d := json.NewDecoder(strings.NewReader(string(o.Credentials)))
	if err := d.Decode(&cr); err != nil || cr.Version != wire.CredentialsVersion || cr.VaultID == "" || cr.Secret == "" || cr.ControlPlaneURL == "" {
		return nil, nil, fmt.Errorf("this is not a Coffer vault credentials file; download one with `coffer admin credentials VAULT`")
	}
	if !time.Now().Before(cr.ExpiresAt) {
		return nil, nil, fmt.Errorf("the vault credentials file expired at %s (they last 48 hours); download a new one", cr.ExpiresAt.Local().Format(time.RFC1123))
	}
	if _, _, err := Load(o.Dir); err == nil {
		return nil, nil, fmt.Errorf("this machine is already registered (%s); to register again, remove that folder first", o.Dir)
	}
	pass := o.Passphrase
	if len(pass) == 0 {
		pass = NewPassphrase()
	} else if n := len([]rune(string(pass))); n < MinPassphrase {
		return nil, nil, fmt.Errorf("the passphrase has %d characters; use at least %d, or let coffer generate one", n, MinPassphrase)
	}
	name := o.Name
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrNoMachineName, err)
		}
		name = strings.Split(h, ".")[0]
	}
	pub, priv, err := reqsign.NewKey()
	if err != nil {
		return nil, nil, err
	}
	anon := &cpclient.Client{BaseURL: cr.ControlPlaneURL, HTTP: &http.Client{Timeout: time.Minute}}
	reg, err := anon.Register(ctx, wire.Register{VaultID: cr.VaultID, CredentialID: cr.CredentialID,
		Secret: cr.Secret, MachineName: name, PublicKey: reqsign.EncodePublicKey(pub), OS: o.OS, AgentVersion: o.Version,
		KeyVaultPrincipalID: KeyVaultPrincipal(ctx, cr.TenantID)})
	if err != nil {
		return nil, nil, fmt.Errorf("register with the vault: %w", err)
	}
	c := &Config{ControlPlaneURL: cr.ControlPlaneURL, VaultID: reg.VaultID, VaultName: cr.VaultName, MachineID: reg.MachineID,
		MachineName: reg.MachineName, Container: reg.Container, BlobEndpoint: reg.BlobEndpoint, KeyVaultURL: reg.KeyVaultURL,
		SecretName: reg.SecretName, TenantID: cr.TenantID}
	if err := save(o.Dir, c, priv); err != nil {
		return nil, nil, err
	}
	s := newSession(o.Dir, c, priv)
	e, err := s.Escrow()
	if err != nil {
		return nil, nil, err
	}
	// The machine's role on its new secret is granted at registration and
	// may take a while to apply, so this waits for it.
	if _, err := e.StoreWhenGranted(ctx, pass); err != nil {
		// Without escrow there must be no repository and no registration
		// left here, or `coffer register` could not be run again.
		if rerr := errors.Join(os.Remove(filepath.Join(o.Dir, configFile)), os.Remove(filepath.Join(o.Dir, keyFile))); rerr != nil {
			return nil, nil, fmt.Errorf("%w; also, the half-done registration in %s could not be removed (remove that folder before registering again): %v", err, o.Dir, rerr)
		}
		return nil, nil, fmt.Errorf("%w; nothing was kept on this machine, so run `coffer register` again once the role can be assigned (machine %s stays listed in vault %s until an admin removes it)",
			err, c.MachineName, c.VaultName)
	}
	if _, err := repository.Init(ctx, s.Backend(), pass, repository.Options{Hostname: name}); err != nil {
		return nil, nil, fmt.Errorf("create the repository in the machine's container: %w", err)
	}
	return s, pass, nil
}

// SourceRepository opens another machine's repository for a restore onto
// this one, with read-only tokens an Operator's restore grant allows. The
// source's passphrase is pass if given, else fetched from Key Vault (this
// machine's identity must be allowed to read the source's secret).
func (s *Session) SourceRepository(ctx context.Context, source string, pass []byte) (*repository.Repository, *wire.RestoreAccess, error) {
	access := func(ctx context.Context) (wire.RestoreAccess, error) { return s.Client.RestoreAccess(ctx, source) }
	first, err := access(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read machine %s's data: %w", source, err)
	}
	be := retry.New(&sasBackend{now: s.Now, grant: func(ctx context.Context) (wire.SAS, error) {
		a, err := access(ctx)
		return wire.SAS{ContainerURL: a.ContainerURL, SAS: a.SAS, ExpiresOn: a.ExpiresOn}, err
	}}, retry.Policy{})
	if len(pass) == 0 {
		e, err := NewEscrow(first.KeyVaultURL, first.SecretName, s.Config.TenantID)
		if err != nil {
			return nil, nil, err
		}
		if pass, err = e.Fetch(ctx, ""); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrSourcePassphrase, err)
		}
	}
	r, err := repository.Open(ctx, be, pass, repository.Options{})
	if errors.Is(err, repository.ErrWrongPassphrase) {
		return nil, nil, fmt.Errorf("%w: that is not %s's passphrase", err, first.SourceName)
	}
	return r, &first, err
}

// ChangePassphrase changes the machine's passphrase with a security PIN:
// the control plane approves (and raises a critical alert), a new key file
// wraps the master key with the new passphrase, Key Vault gets it as a new
// version, and the control plane retires the old key file so the old
// passphrase stops working. No data is re-encrypted.
func (s *Session) ChangePassphrase(ctx context.Context, pin string, newPass []byte) error {
	if n := len([]rune(string(newPass))); n < MinPassphrase {
		return fmt.Errorf("the new passphrase has %d characters; use at least %d", n, MinPassphrase)
	}
	if err := s.Client.ApprovePassphraseChange(ctx, pin); err != nil {
		return fmt.Errorf("the vault did not allow the change: %w", err)
	}
	r, err := s.Repository(ctx)
	if err != nil {
		return err
	}
	old, err := r.AddKey(ctx, newPass, repository.Options{Hostname: s.Config.MachineName})
	if err != nil {
		return fmt.Errorf("write the new key file: %w", err)
	}
	e, err := s.Escrow()
	if err == nil {
		_, err = e.Store(ctx, newPass)
	}
	if err != nil {
		return fmt.Errorf("%w; both passphrases open the repository until this succeeds, so run the change again", err)
	}
	// The control plane retires the old file only after checking that the
	// one named as its replacement exists and is a key file.
	if err := s.Client.RetireKey(ctx, old, r.KeyID()); err != nil {
		return fmt.Errorf("the new passphrase is in use and escrowed, but the old key file keys/%s was not retired, so the old passphrase still works: %w", old, err)
	}
	return nil
}
