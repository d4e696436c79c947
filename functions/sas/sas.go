// Package sas issues the short-lived container SAS tokens agents back up
// with. A grant covers one container and allows create, read and list only
// (sp=rcl): an agent can add objects to its own repository but can never
// overwrite or delete one, nor reach another machine's container, even if
// its machine is compromised. A machine whose protection is stopped gets
// ReadOnly grants only (read and list): its retained points stay
// restorable, but nothing new is written until an admin resumes protection.
//
// In Azure the control plane runs with a managed identity and signs with a
// user delegation key (NewUserDelegation), so no account key exists to
// leak. The account key (NewSharedKey) is for Azurite and development.
package sas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// MaxTTL is the longest a grant lives: a leaked SAS is useless within the hour.
const MaxTTL = time.Hour

// Permissions are the only rights a grant carries: create, read and list
// (c, r, l; never w, d or a), written in the order Azure requires.
const Permissions = "rcl"

const (
	// clockSkew backdates a grant's start so that an agent whose clock (or
	// a storage front end's) runs a little ahead can use it at once.
	clockSkew = 5 * time.Minute
	// keyLifetime is how long a user delegation key is requested for; Azure
	// allows up to 7 days.
	keyLifetime = 24 * time.Hour
	// keyRenewBefore renews a cached key while it still has this long to
	// live, so a failed renewal leaves hours to retry before grants fail.
	keyRenewBefore = 12 * time.Hour
	// renewBackoff spaces renewal attempts while the cached key still
	// serves, so an identity outage does not slow every grant.
	renewBackoff = time.Minute
)

// Grant is a SAS for one container.
type Grant struct {
	ContainerURL string    // the container's URL, without a query
	SAS          string    // the SAS query, without "?"
	ExpiresOn    time.Time // when the SAS stops working
}

// URL is the container URL with the SAS: what an agent opens its repository with.
func (g Grant) URL() string { return g.ContainerURL + "?" + g.SAS }

// keyGetter gets user delegation keys; *service.Client is one.
type keyGetter interface {
	GetUserDelegationCredential(ctx context.Context, info service.KeyInfo, o *service.GetUserDelegationCredentialOptions) (*service.UserDelegationCredential, error)
}

// Issuer signs container grants.
type Issuer struct {
	serviceURL string         // scheme://host[/account], no trailing slash
	protocol   azsas.Protocol // HTTPS only, except on loopback
	now        func() time.Time
	err        error // a configuration error reported by every Container call

	// Exactly one of these signs.
	shared *azblob.SharedKeyCredential
	keys   keyGetter

	mu        sync.Mutex // guards the cached user delegation key
	key       *service.UserDelegationCredential
	keyStart  time.Time
	keyExpiry time.Time
	nextRenew time.Time // no renewal attempt before this, after a failed one
}

// NewSharedKey returns an Issuer that signs with the account key: for
// Azurite and development. serviceURL is the blob service URL (for Azurite
// http://127.0.0.1:PORT/devstoreaccount1). Plain HTTP is accepted only on a
// loopback host; grants then allow HTTP as well as HTTPS. Elsewhere they
// are HTTPS-only.
func NewSharedKey(serviceURL, account, key string, now func() time.Time) (*Issuer, error) {
	base, protocol, err := parseServiceURL(serviceURL, true)
	if err != nil {
		return nil, err
	}
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		return nil, fmt.Errorf("storage account key for %q: %w; copy it again from the storage account's Access keys", account, err)
	}
	if now == nil {
		now = time.Now
	}
	return &Issuer{serviceURL: base, protocol: protocol, now: now, shared: cred}, nil
}

// NewUserDelegation returns an Issuer that signs with user delegation keys
// obtained through svc, which must authenticate with Entra ID (a managed
// identity) holding a role that may delegate, such as Storage Blob Data
// Owner or Contributor. serviceURL is the blob service URL,
// https://ACCOUNT.blob.core.windows.net; grants are HTTPS-only. A key is
// requested for a day, cached, and renewed when less than half of it is
// left; an Issuer may be used from several goroutines.
func NewUserDelegation(svc *service.Client, serviceURL string, now func() time.Time) *Issuer {
	if svc == nil {
		return newUserDelegation(nil, serviceURL, now) // a nil interface, not a nil *service.Client in one
	}
	return newUserDelegation(svc, serviceURL, now)
}

func newUserDelegation(keys keyGetter, serviceURL string, now func() time.Time) *Issuer {
	if now == nil {
		now = time.Now
	}
	i := &Issuer{now: now, keys: keys}
	i.serviceURL, i.protocol, i.err = parseServiceURL(serviceURL, false)
	if i.err == nil && keys == nil {
		i.err = errors.New("user delegation SAS needs a blob service client; construct it with the managed identity's credential")
	}
	return i
}

// Container issues a grant for container, valid from now−5min until now+ttl.
// ttl must be positive; it is capped at MaxTTL.
func (i *Issuer) Container(ctx context.Context, container string, ttl time.Duration) (Grant, error) {
	return i.grant(ctx, container, ttl, Permissions)
}

// ReadPermissions is what a restore from another machine's container
// needs: read and list, nothing that writes.
const ReadPermissions = "rl"

// ReadOnly issues a read-and-list grant, as Container does otherwise.
func (i *Issuer) ReadOnly(ctx context.Context, container string, ttl time.Duration) (Grant, error) {
	return i.grant(ctx, container, ttl, ReadPermissions)
}

func (i *Issuer) grant(ctx context.Context, container string, ttl time.Duration, perms string) (Grant, error) {
	if i.err != nil {
		return Grant{}, i.err
	}
	if err := CheckContainerName(container); err != nil {
		return Grant{}, err
	}
	if ttl <= 0 {
		return Grant{}, fmt.Errorf("SAS lifetime %v is not positive; ask for up to %v", ttl, MaxTTL)
	}
	ttl = min(ttl, MaxTTL)
	now := i.now().UTC()
	// SAS times have whole seconds; truncate so ExpiresOn is what Azure enforces.
	start := now.Add(-clockSkew).Truncate(time.Second)
	expiry := now.Add(ttl).Truncate(time.Second)
	v := azsas.BlobSignatureValues{
		Protocol:      i.protocol,
		StartTime:     start,
		ExpiryTime:    expiry,
		Permissions:   perms,
		ContainerName: container,
	}
	var qp azsas.QueryParameters
	var err error
	if i.shared != nil {
		qp, err = v.SignWithSharedKey(i.shared)
	} else {
		var key *service.UserDelegationCredential
		if key, err = i.delegationKey(ctx, now, start, expiry); err != nil {
			return Grant{}, err
		}
		qp, err = v.SignWithUserDelegation(key)
	}
	if err != nil {
		return Grant{}, fmt.Errorf("sign SAS for container %s: %w", container, err)
	}
	return Grant{ContainerURL: i.serviceURL + "/" + container, SAS: qp.Encode(), ExpiresOn: expiry}, nil
}

// delegationKey returns a cached key covering [start, expiry], renewing it
// when it is due. The lock is held across the request so concurrent callers
// wait for one renewal instead of each asking for a key.
func (i *Issuer) delegationKey(ctx context.Context, now, start, expiry time.Time) (*service.UserDelegationCredential, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	covers := i.key != nil && !start.Before(i.keyStart) && !expiry.After(i.keyExpiry)
	if covers && (now.Add(keyRenewBefore).Before(i.keyExpiry) || now.Before(i.nextRenew)) {
		return i.key, nil
	}
	keyStart := now.Add(-clockSkew).Truncate(time.Second)
	keyExpiry := now.Add(keyLifetime).Truncate(time.Second)
	key, err := i.keys.GetUserDelegationCredential(ctx, service.KeyInfo{
		Start:  new(keyStart.Format(azsas.TimeFormat)),
		Expiry: new(keyExpiry.Format(azsas.TimeFormat)),
	}, nil)
	if err != nil {
		if covers {
			// The old key still covers this grant; keep serving and retry on
			// a minute, hours before it matters.
			i.nextRenew = now.Add(renewBackoff)
			slog.WarnContext(ctx, "renew user delegation key failed; using the cached key",
				"keyExpiry", i.keyExpiry, "err", err)
			return i.key, nil
		}
		return nil, fmt.Errorf("get a user delegation key: %w; check that the control plane's managed identity has Storage Blob Data Owner or Contributor on the storage account", err)
	}
	i.key, i.keyStart, i.keyExpiry = key, keyStart, keyExpiry
	slog.InfoContext(ctx, "new user delegation key", "expiry", keyExpiry)
	return key, nil
}

// parseServiceURL checks a blob service URL and picks the SAS protocol.
func parseServiceURL(raw string, allowLoopbackHTTP bool) (string, azsas.Protocol, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("blob service URL %q: %w", raw, err)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("blob service URL %q must be scheme://host[:port][/account] with no query, such as https://ACCOUNT.blob.core.windows.net", raw)
	}
	base := strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/")
	switch {
	case u.Scheme == "https":
		return base, azsas.ProtocolHTTPS, nil
	case u.Scheme == "http" && allowLoopbackHTTP && isLoopback(u.Hostname()):
		return base, azsas.ProtocolHTTPSandHTTP, nil
	case u.Scheme == "http" && allowLoopbackHTTP:
		return "", "", fmt.Errorf("blob service URL %q uses plain HTTP on a host that is not loopback; use https:// so SAS tokens never cross a network in clear", raw)
	case u.Scheme == "http":
		return "", "", fmt.Errorf("blob service URL %q uses plain HTTP; user delegation SAS needs https://", raw)
	default:
		return "", "", fmt.Errorf("blob service URL %q has scheme %q; use https://", raw, u.Scheme)
	}
}

// isLoopback reports whether host never leaves the machine: a loopback IP,
// localhost, or a name under .localhost (RFC 6761).
func isLoopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// CheckContainerName accepts Azure's container names: 3 to 63 characters,
// lower-case letters, digits and single hyphens, starting and ending with a
// letter or digit. Names such as $logs or $root are refused.
func CheckContainerName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("container name %q has %d characters; Azure needs 3 to 63", name, len(name))
	}
	for k := 0; k < len(name); k++ {
		c := name[k]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && k > 0 && k < len(name)-1 && name[k-1] != '-':
		default:
			return fmt.Errorf("container name %q is not valid: use lower-case letters, digits and single hyphens, starting and ending with a letter or digit", name)
		}
	}
	return nil
}
