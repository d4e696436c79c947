package containers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/functions/sas"
	"github.com/coffer-backup/coffer/shared/layout"
)

// DefaultSoftDelete is how long a retired key file stays undeletable unless
// the deployment says otherwise (COFFER_SOFT_DELETE_DAYS), as for points.
const DefaultSoftDelete = 14 * 24 * time.Hour

// DeletedContainer holds what was removed from machines' containers on an
// agent's request, until it is undeleted or purged. Blob soft delete would
// do, but Azurite lacks it and a deployment may turn it off; this works the
// same everywhere. Agents get SAS for their own container only, so none can
// read, create or remove anything here. The name has no hyphen, so it can
// never be a machine's ("coffer-<machine ID>").
const DeletedContainer = "cofferdeleted"

// maxKeyFile bounds what is read as a key file: a real one is under 1 KiB.
const maxKeyFile = 64 << 10

// Errors for a key retirement or undelete that cannot be done; the API
// answers them as the client's (409).
var (
	ErrNoSuchKey      = errors.New("no such key file")
	ErrLastKey        = errors.New("last key file")
	ErrBadReplacement = errors.New("the replacement key file is not valid")
	ErrNotDeleted     = errors.New("no soft-deleted key file")
)

// DeletedKey is a key file retired on an agent's request and kept for
// undelete until PurgeAfter.
type DeletedKey struct {
	Container   string    `json:"container"`
	KeyID       string    `json:"keyId"`
	ReplacedBy  string    `json:"replacedBy,omitempty"`
	Reason      string    `json:"reason"`
	DeletedAt   time.Time `json:"deletedAt"`
	PurgeAfter  time.Time `json:"purgeAfter"`
	Size        int64     `json:"size"`
	blobName    string
	purgeAfterK string
}

// Metadata of a soft-deleted copy.
const (
	metaDeletedAt  = "coffer_deleted_at"
	metaPurgeAfter = "coffer_purge_after"
	metaReplacedBy = "coffer_replaced_by"
	metaWhy        = "coffer_reason"
)

// deletedName is where a copy of container's object lives, one per
// deletion: <container>/<object>/<deletion time, ns>-<random>.
func deletedName(name, obj string, at time.Time) string {
	var r [4]byte
	rand.Read(r[:])
	return name + "/" + obj + "/" + fmt.Sprintf("%020d-%x", at.UnixNano(), r)
}

// RetireKey soft-deletes keys/<keyID> after a PIN-approved passphrase
// change. The agent names the key file it wrote with the new passphrase
// (replacement); the control plane checks that replacement exists, is named
// by the SHA-256 of its bytes as every key file is, and parses as a key
// file, so the repository still has a key after keyID goes (a key file is
// never the last one retired). The old file is copied to DeletedContainer
// before it is removed, and can be undeleted until the soft-delete period
// ends: nothing an agent can trigger removes data for good.
//
// What the control plane cannot check without the passphrase is that the
// replacement wraps the same master key; the soft delete and the critical
// alert of the passphrase change are what protect against a forged one.
func (c *Containers) RetireKey(ctx context.Context, name, keyID, replacement string) (DeletedKey, error) {
	if err := sas.CheckContainerName(name); err != nil {
		return DeletedKey{}, err
	}
	for _, id := range []string{keyID, replacement} {
		if !layout.ValidID(id) {
			return DeletedKey{}, fmt.Errorf("%w: key ID %q is not 64 lower-case hex digits", ErrNoSuchKey, id)
		}
	}
	if keyID == replacement {
		return DeletedKey{}, fmt.Errorf("%w: keys/%s cannot replace itself; name the key file the new passphrase opens", ErrLastKey, keyID)
	}
	cc := c.svc.NewContainerClient(name)
	nb, _, err := readSmall(ctx, cc, layout.Key(replacement))
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return DeletedKey{}, fmt.Errorf("%w: keys/%s is not in %s; write the new key file first", ErrBadReplacement, replacement, name)
	}
	if err != nil {
		return DeletedKey{}, err
	}
	if err := CheckKeyFile(replacement, nb); err != nil {
		return DeletedKey{}, fmt.Errorf("%w: keys/%s: %v", ErrBadReplacement, replacement, err)
	}
	ob, etag, err := readSmall(ctx, cc, layout.Key(keyID))
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return DeletedKey{}, fmt.Errorf("%w: key file keys/%s is not in %s", ErrNoSuchKey, keyID, name)
	}
	if err != nil {
		return DeletedKey{}, err
	}
	dk, err := c.softDelete(ctx, name, layout.Key(keyID), ob, replacement, "retired by a passphrase change")
	if err != nil {
		return DeletedKey{}, err
	}
	_, err = cc.NewBlobClient(layout.Key(keyID)).Delete(ctx, &blob.DeleteOptions{AccessConditions: ifMatch(etag)})
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return DeletedKey{}, fmt.Errorf("delete keys/%s in %s (a copy is kept in %s): %w", keyID, name, DeletedContainer, err)
	}
	c.log.InfoContext(ctx, "key file retired into soft delete", "container", name, "key", keyID, "replacedBy", replacement, "purgeAfter", dk.PurgeAfter)
	return dk, nil
}

// softDelete stores a copy of obj's bytes in DeletedContainer.
func (c *Containers) softDelete(ctx context.Context, name, obj string, b []byte, replacedBy, reason string) (DeletedKey, error) {
	if err := c.ensureDeleted(ctx); err != nil {
		return DeletedKey{}, err
	}
	now := c.now().UTC()
	keep := c.SoftDeleteFor
	if keep <= 0 {
		keep = DefaultSoftDelete
	}
	dk := DeletedKey{Container: name, KeyID: strings.TrimPrefix(obj, layout.KeysPrefix), ReplacedBy: replacedBy, Reason: reason,
		DeletedAt: now, PurgeAfter: now.Add(keep), Size: int64(len(b)), blobName: deletedName(name, obj, now)}
	md := map[string]*string{
		metaDeletedAt:  to.Ptr(now.Format(time.RFC3339Nano)),
		metaPurgeAfter: to.Ptr(dk.PurgeAfter.Format(time.RFC3339Nano)),
		metaWhy:        to.Ptr(headerSafe(reason)),
	}
	if replacedBy != "" {
		md[metaReplacedBy] = to.Ptr(replacedBy)
	}
	_, err := c.svc.NewContainerClient(DeletedContainer).NewBlockBlobClient(dk.blobName).UploadBuffer(ctx, b, &blockblob.UploadBufferOptions{
		Metadata: md, AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
	if err != nil {
		return DeletedKey{}, fmt.Errorf("keep a copy of %s of %s in %s before removing it: %w", obj, name, DeletedContainer, err)
	}
	return dk, nil
}

func (c *Containers) ensureDeleted(ctx context.Context) error {
	_, err := c.svc.CreateContainer(ctx, DeletedContainer, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("create the soft-delete container %s: %w", DeletedContainer, err)
	}
	return nil
}

// DeletedKeys lists a container's soft-deleted key files, newest first.
func (c *Containers) DeletedKeys(ctx context.Context, name string) ([]DeletedKey, error) {
	if err := sas.CheckContainerName(name); err != nil {
		return nil, err
	}
	var out []DeletedKey
	err := c.listDeleted(ctx, name+"/"+layout.KeysPrefix, func(dk DeletedKey) error {
		out = append(out, dk)
		return nil
	})
	slices.SortFunc(out, func(a, b DeletedKey) int { return b.DeletedAt.Compare(a.DeletedAt) })
	return out, err
}

// listDeleted calls fn for every soft-deleted key file under prefix.
func (c *Containers) listDeleted(ctx context.Context, prefix string, fn func(DeletedKey) error) error {
	pager := c.svc.NewContainerClient(DeletedContainer).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix: &prefix, Include: container.ListBlobsInclude{Metadata: true}})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil // nothing was ever soft-deleted
		}
		if err != nil {
			return fmt.Errorf("list soft-deleted key files: %w", err)
		}
		if page.Segment == nil {
			continue
		}
		for _, it := range page.Segment.BlobItems {
			dk, ok := parseDeleted(it)
			if !ok {
				continue
			}
			if err := fn(dk); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseDeleted reads a DeletedContainer listing entry:
// <container>/keys/<key ID>/<nanoseconds>-<random>.
func parseDeleted(it *container.BlobItem) (DeletedKey, bool) {
	if it.Name == nil {
		return DeletedKey{}, false
	}
	parts := strings.Split(*it.Name, "/")
	if len(parts) != 4 || parts[1]+"/" != layout.KeysPrefix || !layout.ValidID(parts[2]) {
		return DeletedKey{}, false
	}
	stamp, _, _ := strings.Cut(parts[3], "-")
	ns, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return DeletedKey{}, false
	}
	dk := DeletedKey{Container: parts[0], KeyID: parts[2], DeletedAt: time.Unix(0, ns).UTC(), blobName: *it.Name}
	md := map[string]string{}
	for k, v := range it.Metadata {
		if v != nil {
			md[strings.ToLower(k)] = *v
		}
	}
	dk.ReplacedBy, dk.Reason = md[metaReplacedBy], md[metaWhy]
	dk.PurgeAfter, err = time.Parse(time.RFC3339Nano, md[metaPurgeAfter])
	if err != nil {
		// No readable date: keep it for the default period from deletion.
		dk.PurgeAfter = dk.DeletedAt.Add(DefaultSoftDelete)
	}
	if it.Properties != nil && it.Properties.ContentLength != nil {
		dk.Size = *it.Properties.ContentLength
	}
	return dk, true
}

// UndeleteKey puts the newest soft-deleted copy of keys/<keyID> back. If
// something else took the name meanwhile (an agent can create any name), it
// is set aside into soft delete too, unless it is the same key file.
func (c *Containers) UndeleteKey(ctx context.Context, name, keyID string) (DeletedKey, error) {
	if err := sas.CheckContainerName(name); err != nil {
		return DeletedKey{}, err
	}
	if !layout.ValidID(keyID) {
		return DeletedKey{}, fmt.Errorf("%w: key ID %q is not 64 lower-case hex digits", ErrNotDeleted, keyID)
	}
	dks, err := c.DeletedKeys(ctx, name)
	if err != nil {
		return DeletedKey{}, err
	}
	i := slices.IndexFunc(dks, func(dk DeletedKey) bool { return dk.KeyID == keyID })
	if i < 0 {
		return DeletedKey{}, fmt.Errorf("%w: keys/%s of %s is not soft-deleted (never retired, undeleted already, or purged)", ErrNotDeleted, keyID, name)
	}
	dk := dks[i]
	dc := c.svc.NewContainerClient(DeletedContainer)
	b, _, err := readSmall(ctx, dc, dk.blobName)
	if err != nil {
		return DeletedKey{}, err
	}
	cc := c.svc.NewContainerClient(name)
	obj := layout.Key(keyID)
	for attempt := 0; ; attempt++ {
		_, err = cc.NewBlockBlobClient(obj).UploadBuffer(ctx, b, &blockblob.UploadBufferOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
		if err == nil {
			break
		}
		if !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) || attempt > 0 {
			return DeletedKey{}, fmt.Errorf("restore %s in %s: %w", obj, name, err)
		}
		have, etag, rerr := readSmall(ctx, cc, obj)
		if rerr != nil {
			return DeletedKey{}, rerr
		}
		if bytes.Equal(have, b) {
			break // the same key file is back already
		}
		if _, err := c.softDelete(ctx, name, obj, have, "", "took the name of a soft-deleted key file being undeleted"); err != nil {
			return DeletedKey{}, err
		}
		if _, err := cc.NewBlobClient(obj).Delete(ctx, &blob.DeleteOptions{AccessConditions: ifMatch(etag)}); err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
			return DeletedKey{}, fmt.Errorf("set aside the object that took the name %s in %s: %w", obj, name, err)
		}
	}
	if _, err := dc.NewBlobClient(dk.blobName).Delete(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return DeletedKey{}, fmt.Errorf("key file restored, but its soft-deleted copy could not be removed (the purge timer will): %w", err)
	}
	c.log.InfoContext(ctx, "key file undeleted", "container", name, "key", keyID)
	return dk, nil
}

// PurgeDeletedKeys removes for good the soft-deleted key files whose
// period is over, by the injected clock, and returns how many.
func (c *Containers) PurgeDeletedKeys(ctx context.Context) (int, error) {
	now := c.now()
	var due []DeletedKey
	if err := c.listDeleted(ctx, "", func(dk DeletedKey) error {
		if !now.Before(dk.PurgeAfter) {
			due = append(due, dk)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	dc := c.svc.NewContainerClient(DeletedContainer)
	n := 0
	for _, dk := range due {
		if _, err := dc.NewBlobClient(dk.blobName).Delete(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
			return n, fmt.Errorf("purge soft-deleted key file %s: %w", dk.blobName, err)
		}
		n++
		c.log.InfoContext(ctx, "soft-deleted key file purged", "container", dk.Container, "key", dk.KeyID)
	}
	return n, nil
}

// readSmall reads an object of at most maxKeyFile bytes.
func readSmall(ctx context.Context, cc *container.Client, obj string) ([]byte, azcore.ETag, error) {
	resp, err := cc.NewBlobClient(obj).DownloadStream(ctx, nil)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", obj, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyFile+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", obj, err)
	}
	if len(b) > maxKeyFile {
		return nil, "", fmt.Errorf("%w: %s is larger than %d bytes, so it is not a key file", ErrBadReplacement, obj, maxKeyFile)
	}
	var etag azcore.ETag
	if resp.ETag != nil {
		etag = *resp.ETag
	}
	return b, etag, nil
}

func ifMatch(etag azcore.ETag) *blob.AccessConditions {
	if etag == "" {
		return nil
	}
	return &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}}
}

// Bounds of a key file's KDF parameters (docs/repository-format.md).
const (
	minMemoryKiB, maxMemoryKiB = 8 << 10, 4 << 20
	minKDFTime, maxKDFTime     = 1, 100
	minThreads, maxThreads     = 1, 64
	minSalt, maxSalt           = 16, 1024
	wrappedLen                 = 12 + 96 + 16 // nonce, master key, tag
)

// CheckKeyFile checks, without any passphrase, that b is a key file as
// docs/repository-format.md describes and that id is its name: the SHA-256
// of its bytes. Whether it opens with some passphrase only the agent can
// tell.
func CheckKeyFile(id string, b []byte) error {
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != id {
		return errors.New("its bytes do not hash to its name, so it is not a key file Coffer wrote")
	}
	var kf struct {
		Version  int       `json:"version"`
		Created  time.Time `json:"created"`
		Hostname string    `json:"hostname"`
		Wrapped  *struct {
			KDF struct {
				Algorithm string `json:"algorithm"`
				Time      uint32 `json:"time"`
				MemoryKiB uint32 `json:"memoryKiB"`
				Threads   uint8  `json:"threads"`
				Salt      []byte `json:"salt"`
			} `json:"kdf"`
			Data []byte `json:"data"`
		} `json:"wrapped"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&kf); err != nil {
		return fmt.Errorf("not a key file: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("not a key file: data after the JSON object")
	}
	switch {
	case kf.Version != 1:
		return fmt.Errorf("key file version %d; this control plane knows version 1", kf.Version)
	case kf.Wrapped == nil:
		return errors.New("the key file wraps no key")
	case kf.Wrapped.KDF.Algorithm != "argon2id":
		return fmt.Errorf("KDF %q; key files use argon2id", kf.Wrapped.KDF.Algorithm)
	case kf.Wrapped.KDF.MemoryKiB < minMemoryKiB || kf.Wrapped.KDF.MemoryKiB > maxMemoryKiB,
		kf.Wrapped.KDF.Time < minKDFTime || kf.Wrapped.KDF.Time > maxKDFTime,
		kf.Wrapped.KDF.Threads < minThreads || kf.Wrapped.KDF.Threads > maxThreads:
		return errors.New("KDF parameters out of bounds")
	case len(kf.Wrapped.KDF.Salt) < minSalt || len(kf.Wrapped.KDF.Salt) > maxSalt:
		return fmt.Errorf("a salt of %d bytes", len(kf.Wrapped.KDF.Salt))
	case len(kf.Wrapped.Data) != wrappedLen:
		return fmt.Errorf("a wrapped key of %d bytes, not %d", len(kf.Wrapped.Data), wrappedLen)
	}
	return nil
}
