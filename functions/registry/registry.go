// Package registry keeps the vaults, their credentials, machines and
// policies in Table storage: the configuration the rest of the control plane
// reads.
//
// Tables and keys:
//   - vaults:   PK "v", RK vault ID. Holds the hash of the newest credentials.
//   - machines: PK "m", RK machine ID, with the vault ID as a column. Agents
//     name only their machine ID, so it must be a point lookup; a vault's
//     machines are one partition scan, fine at branch-office scale.
//   - machines: PK "n", RK vault ID + "~" + hex(lower-case name): the claim
//     that keeps names unique in a vault.
//   - policies: PK vault ID, RK policy name.
package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// CredentialsTTL is how long a vault credentials file is valid, as in MARS.
const CredentialsTTL = 48 * time.Hour

// Errors the API maps to codes; each is wrapped with what to fix.
var (
	ErrNotFound   = errors.New("not found")
	ErrInvalid    = errors.New("invalid")
	ErrConflict   = errors.New("conflict")
	ErrBadSecret  = errors.New("credentials do not match")
	ErrExpired    = errors.New("credentials expired")
	ErrSuperseded = errors.New("credentials superseded")
)

// Registry is the store. Its methods are safe for concurrent use.
type Registry struct {
	vaults, machines, policies *aztables.Client
	now                        func() time.Time
	// SoftDelete is how long a machine's deleted data stays undeletable.
	SoftDelete time.Duration
}

// New uses the tables named in the package comment on svc.
func New(svc *aztables.ServiceClient, now func() time.Time) *Registry {
	return &Registry{
		vaults:     svc.NewClient("vaults"),
		machines:   svc.NewClient("machines"),
		policies:   svc.NewClient("policies"),
		now:        now,
		SoftDelete: SoftDeleteRetention,
	}
}

// EnsureTables creates the tables if they are missing.
func (r *Registry) EnsureTables(ctx context.Context) error {
	for _, c := range []*aztables.Client{r.vaults, r.machines, r.policies} {
		if err := tables.Ensure(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

type vaultEntity struct {
	PartitionKey string
	RowKey       string
	Name         string
	Recipients   string // JSON-free: comma-separated addresses
	Digest       bool
	Security     bool
	MUA          bool // multi-user authorization; vaults stored before it existed read as off
	CreatedAt    string
	CredID       string
	CredHash     string
	CredExpires  string
}

func (v *vaultEntity) api() wire.Vault {
	out := wire.Vault{ID: v.RowKey, Name: v.Name, AlertDigest: v.Digest, SecurityFeatures: v.Security,
		MultiUserAuth: v.MUA, CreatedAt: tables.ParseTime(v.CreatedAt), AlertRecipients: []string{}}
	if v.Recipients != "" {
		out.AlertRecipients = strings.Split(v.Recipients, ",")
	}
	return out
}

// NewID makes a random ID in the form tables.CheckID accepts.
func NewID() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func checkVaultName(name string) error {
	if err := wire.CheckVaultName(name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

func checkRecipients(rs []string) (string, error) {
	if len(rs) > 50 {
		return "", fmt.Errorf("%w: at most 50 alert recipients; use a distribution list", ErrInvalid)
	}
	clean := make([]string, 0, len(rs))
	for _, r := range rs {
		a, err := mail.ParseAddress(r)
		if err != nil || a.Name != "" || strings.ContainsAny(a.Address, ",\r\n") {
			return "", fmt.Errorf("%w: alert recipient %q is not a plain email address like ops@example.com", ErrInvalid, r)
		}
		clean = append(clean, a.Address)
	}
	slices.Sort(clean)
	return strings.Join(slices.Compact(clean), ","), nil
}

// CreateVault adds a vault with security features and multi-user
// authorization on unless nv says off.
func (r *Registry) CreateVault(ctx context.Context, nv wire.NewVault) (wire.Vault, error) {
	if err := checkVaultName(nv.Name); err != nil {
		return wire.Vault{}, err
	}
	rc, err := checkRecipients(nv.AlertRecipients)
	if err != nil {
		return wire.Vault{}, err
	}
	v := vaultEntity{PartitionKey: "v", RowKey: NewID(), Name: nv.Name, Recipients: rc, Digest: nv.AlertDigest,
		Security: nv.SecurityFeatures == nil || *nv.SecurityFeatures, MUA: nv.MultiUserAuth == nil || *nv.MultiUserAuth,
		CreatedAt: tables.Time(r.now())}
	// Names are unique, ignoring case, so admins and scripts can use them.
	claim := nameClaim{PartitionKey: "vn", RowKey: hex.EncodeToString([]byte(strings.ToLower(nv.Name))), MachineID: v.RowKey}
	if err := tables.Add(ctx, r.vaults, &claim); err != nil {
		if tables.Exists(err) {
			return wire.Vault{}, fmt.Errorf("%w: a vault named %q already exists; choose another name", ErrConflict, nv.Name)
		}
		return wire.Vault{}, fmt.Errorf("claim vault name: %w", err)
	}
	if err := tables.Add(ctx, r.vaults, &v); err != nil {
		tables.Delete(ctx, r.vaults, "vn", claim.RowKey)
		return wire.Vault{}, fmt.Errorf("store vault: %w", err)
	}
	return v.api(), nil
}

func (r *Registry) getVault(ctx context.Context, id string) (*vaultEntity, azcore.ETag, error) {
	if err := tables.CheckID("vault", id); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	var v vaultEntity
	etag, err := tables.Get(ctx, r.vaults, "v", id, &v)
	if tables.NotFound(err) {
		return nil, "", fmt.Errorf("%w: no vault %s; list vaults with GET /api/v1/vaults", ErrNotFound, id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read vault %s: %w", id, err)
	}
	return &v, etag, nil
}

// Vault returns one vault.
func (r *Registry) Vault(ctx context.Context, id string) (wire.Vault, error) {
	v, _, err := r.getVault(ctx, id)
	if err != nil {
		return wire.Vault{}, err
	}
	return v.api(), nil
}

// Vaults lists every vault, oldest first.
func (r *Registry) Vaults(ctx context.Context) ([]wire.Vault, error) {
	vs, err := tables.Query[vaultEntity](ctx, r.vaults, "PartitionKey eq 'v'", 0)
	if err != nil {
		return nil, fmt.Errorf("list vaults: %w", err)
	}
	out := make([]wire.Vault, len(vs))
	for i := range vs {
		out[i] = vs[i].api()
	}
	slices.SortFunc(out, func(a, b wire.Vault) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// UpdateVault applies u. The caller has already checked the PIN (or the
// approval) when u turns security features or multi-user authorization
// off.
func (r *Registry) UpdateVault(ctx context.Context, id string, u wire.VaultUpdate) (wire.Vault, error) {
	var out wire.Vault
	err := r.modifyVault(ctx, id, func(v *vaultEntity) error {
		if u.AlertRecipients != nil {
			rc, err := checkRecipients(*u.AlertRecipients)
			if err != nil {
				return err
			}
			v.Recipients = rc
		}
		if u.AlertDigest != nil {
			v.Digest = *u.AlertDigest
		}
		if u.SecurityFeatures != nil {
			v.Security = *u.SecurityFeatures
		}
		if u.MultiUserAuth != nil {
			v.MUA = *u.MultiUserAuth
		}
		out = v.api()
		return nil
	})
	return out, err
}

// modifyVault reads, changes and writes a vault, retrying on a concurrent
// change so neither writer's change is lost.
func (r *Registry) modifyVault(ctx context.Context, id string, change func(*vaultEntity) error) error {
	for attempt := 0; ; attempt++ {
		v, etag, err := r.getVault(ctx, id)
		if err != nil {
			return err
		}
		if err := change(v); err != nil {
			return err
		}
		err = tables.Replace(ctx, r.vaults, v, etag)
		if tables.Changed(err) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("update vault %s: %w", id, err)
		}
		return nil
	}
}

// AlertRecipients is what the email function needs to know about a vault.
// A vault that no longer exists has nobody to tell.
func (r *Registry) AlertRecipients(ctx context.Context, vaultID string) ([]string, bool, error) {
	v, err := r.Vault(ctx, vaultID)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v.AlertRecipients, v.AlertDigest, nil
}

// NewCredentials makes the vault's credentials, replacing any older ones.
// Only the secret's hash is stored; the secret is returned once.
func (r *Registry) NewCredentials(ctx context.Context, vaultID string) (credID, secret string, expires time.Time, err error) {
	var raw [32]byte
	rand.Read(raw[:])
	secret = base64.RawURLEncoding.EncodeToString(raw[:])
	credID = NewID()
	expires = r.now().Add(CredentialsTTL).UTC()
	err = r.modifyVault(ctx, vaultID, func(v *vaultEntity) error {
		v.CredID, v.CredHash, v.CredExpires = credID, hashSecret(secret), tables.Time(expires)
		return nil
	})
	return credID, secret, expires, err
}

func hashSecret(s string) string {
	// The secret is 256 random bits, so a fast hash is as strong as a slow one.
	h := sha256.Sum256([]byte("coffer-vault-credentials\n" + s))
	return hex.EncodeToString(h[:])
}

// CheckCredentials accepts only the vault's newest, unexpired credentials.
func (r *Registry) CheckCredentials(ctx context.Context, vaultID, credID, secret string) error {
	v, _, err := r.getVault(ctx, vaultID)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: the credentials name a vault that does not exist", ErrBadSecret)
	}
	if err != nil {
		return err
	}
	switch {
	case v.CredID == "":
		return fmt.Errorf("%w: the vault has no credentials; download a new credentials file", ErrBadSecret)
	case credID != v.CredID:
		return fmt.Errorf("%w: a newer credentials file was generated for vault %s; use the newest one", ErrSuperseded, v.Name)
	case subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(v.CredHash)) != 1:
		return fmt.Errorf("%w: the secret does not match; download a new credentials file", ErrBadSecret)
	case !r.now().Before(tables.ParseTime(v.CredExpires)):
		return fmt.Errorf("%w: the credentials file expired at %s (they last 48 hours); download a new one",
			ErrExpired, tables.ParseTime(v.CredExpires).Format(time.RFC3339))
	}
	return nil
}
