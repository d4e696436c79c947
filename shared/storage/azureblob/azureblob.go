// Package azureblob keeps a repository in an Azure Blob Storage container,
// reached through a container URL carrying a SAS token.
//
// Backups need only create, read and list permissions (sp=crl): Create
// never overwrites (If-None-Match: *), so such a SAS lets an agent add
// objects but neither change nor delete any, even if the agent's machine
// is compromised. Maintenance that deletes needs a SAS with d.
package azureblob

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Options tune the client. The zero Options are the defaults.
type Options struct {
	// BlockSize: objects up to this size go in one request; larger ones as
	// blocks of this size, staged in parallel and committed together, if
	// the SAS grants write permission (staging blocks needs it; without it
	// every object goes in one request). 0 means 8 MiB.
	BlockSize int64
	// Concurrency is how many blocks of one object are in flight; 0 means 4.
	Concurrency int
	// HTTPClient carries the requests; nil means the SDK's default.
	HTTPClient *http.Client
	// Retry tunes the SDK's per-request retries; nil keeps its defaults.
	Retry *policy.RetryOptions
}

const (
	defaultBlockSize = 8 << 20
	maxBlockSize     = 4000 << 20 // Azure's limit for one block
	maxBlocks        = 50000      // Azure's limit for one blob
)

// Backend is a repository in a container.
type Backend struct {
	url         ContainerURL
	c           *container.Client
	blockSize   int64
	concurrency int
}

var _ storage.Backend = (*Backend)(nil)

// New opens the repository in the container containerURL names; the URL
// carries a SAS. Nothing is sent until the first operation.
func New(containerURL string, opts Options) (*Backend, error) {
	u, err := ParseURL(containerURL)
	if err != nil {
		return nil, err
	}
	b := &Backend{url: u, blockSize: opts.BlockSize, concurrency: opts.Concurrency}
	if b.blockSize <= 0 {
		b.blockSize = defaultBlockSize
	}
	if b.blockSize > maxBlockSize {
		return nil, fmt.Errorf("block size %d is larger than Azure's limit of %d bytes", b.blockSize, int64(maxBlockSize))
	}
	if b.concurrency <= 0 {
		b.concurrency = 4
	}
	var co container.ClientOptions
	if opts.HTTPClient != nil {
		co.Transport = opts.HTTPClient
	}
	if opts.Retry != nil {
		co.Retry = *opts.Retry
	} else {
		co.Retry.ShouldRetry = sdkShouldRetry
	}
	c, err := container.NewClientWithNoCredential(strings.TrimSpace(containerURL), &co)
	if err != nil {
		return nil, fmt.Errorf("container %s: %s", u, redact(err.Error()))
	}
	b.c = c
	return b, nil
}

// Location is the container URL without the SAS.
func (b *Backend) Location() string { return b.url.String() }

// ifNoneMatch makes a write fail if the blob exists.
var ifNoneMatch = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}

// Create stores data under name unless the name is taken.
func (b *Backend) Create(ctx context.Context, name string, data []byte) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	bb := b.c.NewBlockBlobClient(name)
	var err error
	if int64(len(data)) > b.blockSize && b.mayStage() {
		err = b.createBlocks(ctx, bb, data)
		if status(err) == http.StatusForbidden && b.url.Permissions == "" {
			// The SAS does not list its permissions and may lack write:
			// one request needs only create.
			err = b.createWhole(ctx, bb, data)
		}
	} else {
		err = b.createWhole(ctx, bb, data)
	}
	if err != nil {
		return b.createErr(ctx, bb, name, err)
	}
	return nil
}

// mayStage reports whether the SAS may allow staging blocks. Put Block and
// Put Block List need write permission (Azurite enforces it; create alone
// allows only Put Blob), so under the agent's create-only SAS every object
// goes in one request, which Azure accepts up to 5000 MiB.
func (b *Backend) mayStage() bool {
	return b.url.Permissions == "" || strings.Contains(b.url.Permissions, "w")
}

// createWhole sends data in one Put Blob.
func (b *Backend) createWhole(ctx context.Context, bb *blockblob.Client, data []byte) error {
	sum := md5.Sum(data)
	_, err := bb.Upload(ctx, body(data), &blockblob.UploadOptions{
		AccessConditions: ifNoneMatch,
		// Azure checks the bytes it received against this.
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
	})
	return err
}

// createBlocks stages data in blocks, several at once, and commits them
// with If-None-Match: *. Nothing is visible until the commit, which is
// atomic, so a failed upload leaves only uncommitted blocks that Azure
// discards within a week.
func (b *Backend) createBlocks(ctx context.Context, bb *blockblob.Client, data []byte) error {
	// A name already taken would only be found at the commit, after all
	// the bytes were sent; a retry of an upload that in fact succeeded
	// would send them all again. Ask first. A SAS without read permission
	// cannot ask; the commit still refuses to overwrite.
	if _, err := bb.GetProperties(ctx, nil); err == nil {
		return errExists
	} else if s := status(err); s != http.StatusNotFound && s != http.StatusForbidden {
		return err
	}

	n := (int64(len(data)) + b.blockSize - 1) / b.blockSize
	if n > maxBlocks {
		return fmt.Errorf("%d bytes in blocks of %d make %d blocks, more than Azure's %d; use a larger block size", len(data), b.blockSize, n, maxBlocks)
	}
	// Block IDs unique to this upload: another writer racing for the same
	// name stages its own blocks, which the winner's commit leaves out,
	// rather than replacing ours under the same IDs.
	var upload [16]byte
	if _, err := rand.Read(upload[:]); err != nil {
		return fmt.Errorf("make block IDs: %w", err)
	}
	ids := make([]string, n)
	for i := range ids {
		id := binary.BigEndian.AppendUint32(upload[:], uint32(i))
		ids[i] = base64.StdEncoding.EncodeToString(id)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(int64(b.concurrency), n) {
		wg.Go(func() {
			for i := range next {
				part := data[int64(i)*b.blockSize : min(int64(i+1)*b.blockSize, int64(len(data)))]
				sum := md5.Sum(part)
				_, err := bb.StageBlock(ctx, ids[i], body(part), &blockblob.StageBlockOptions{
					TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
				})
				if err != nil {
					cancel(err) // the first failure stops the rest
				}
			}
		})
	}
feed:
	for i := range int(n) {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	_, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{AccessConditions: ifNoneMatch})
	return err
}

var errExists = fmt.Errorf("%w", storage.ErrExists)

// createErr says why Create failed in the storage package's terms.
func (b *Backend) createErr(ctx context.Context, bb *blockblob.Client, name string, err error) error {
	switch {
	case errors.Is(err, storage.ErrExists),
		bloberror.HasCode(err, bloberror.BlobAlreadyExists),
		status(err) == http.StatusPreconditionFailed:
		return fmt.Errorf("create %s in %s: %w", name, b.url, storage.ErrExists)
	case status(err) == http.StatusForbidden && ctx.Err() == nil:
		// A create-only SAS may be refused for a blob that exists rather
		// than answer 409: tell the two apart by looking.
		if _, serr := bb.GetProperties(ctx, nil); serr == nil {
			return fmt.Errorf("create %s in %s: %w", name, b.url, storage.ErrExists)
		}
	}
	return b.mapErr("create", name, err)
}

// Read opens length bytes of name from offset.
func (b *Backend) Read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := storage.CheckName(name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("read %s: negative offset %d", name, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if length == 0 {
		// No range says "nothing"; check the object and the offset.
		return b.emptyRead(ctx, name, offset)
	}
	bc := b.c.NewBlobClient(name)
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range: blob.HTTPRange{Offset: offset, Count: max(length, 0)},
	})
	if err != nil {
		if status(err) == http.StatusRequestedRangeNotSatisfiable {
			// Azure refuses a range starting at the end, which storage
			// allows as an empty read.
			return b.emptyRead(ctx, name, offset)
		}
		return nil, b.mapErr("read", name, err)
	}
	// Resumes the download from where it broke if the connection drops,
	// and only from the same version of the blob.
	rr := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	if resp.ContentLength != nil && *resp.ContentLength > 0 {
		return sizedReader{rr, *resp.ContentLength}, nil
	}
	return rr, nil
}

// sizedReader tells storage.ReadAll the length of the download.
type sizedReader struct {
	io.ReadCloser
	size int64
}

func (s sizedReader) Size() int64 { return s.size }

func (b *Backend) emptyRead(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	info, err := b.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	if offset > info.Size {
		return nil, fmt.Errorf("read %s: offset %d is beyond the object's end (%d bytes)", name, offset, info.Size)
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// Stat describes name.
func (b *Backend) Stat(ctx context.Context, name string) (storage.Info, error) {
	if err := storage.CheckName(name); err != nil {
		return storage.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, err
	}
	p, err := b.c.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		return storage.Info{}, b.mapErr("stat", name, err)
	}
	if p.ContentLength == nil {
		return storage.Info{}, fmt.Errorf("stat %s in %s: the response has no Content-Length", name, b.url)
	}
	return storage.Info{Name: name, Size: *p.ContentLength}, nil
}

// List calls fn for every object whose name starts with prefix.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if err := storage.CheckPrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var o container.ListBlobsFlatOptions
	if prefix != "" {
		o.Prefix = &prefix
	}
	pager := b.c.NewListBlobsFlatPager(&o)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return b.mapErr("list", prefix, err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil || item.Properties == nil || item.Properties.ContentLength == nil {
				continue
			}
			if err := fn(storage.Info{Name: *item.Name, Size: *item.Properties.ContentLength}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes name, with its snapshots if it has any.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := b.c.NewBlobClient(name).Delete(ctx, &blob.DeleteOptions{
		DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude),
	})
	if err != nil {
		return b.mapErr("delete", name, err)
	}
	return nil
}

// opError has a short message of its own, free of the SAS, and keeps the
// sentinel and the SDK's error for errors.Is and errors.As (retry looks
// for *azcore.ResponseError's status).
type opError struct {
	msg  string
	errs []error
}

func (e *opError) Error() string   { return e.msg }
func (e *opError) Unwrap() []error { return e.errs }

// Permission letters each operation needs, and what to call them.
var perms = map[string]struct{ letters, say string }{
	"create":  {"cw", `create ("c")`},
	"read":    {"r", `read ("r")`},
	"stat":    {"r", `read ("r")`},
	"list":    {"l", `list ("l")`},
	"delete":  {"d", `delete ("d")`},
	"replace": {"w", `write ("w")`},
}

// mapErr puts an SDK error in the storage package's terms.
func (b *Backend) mapErr(op, name string, err error) error {
	what := fmt.Sprintf("%s %s in %s", op, name, b.url)
	if op == "list" {
		what = fmt.Sprintf("list %q in %s", name, b.url)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// A transport failure or cancellation; its message may quote the
		// request URL, SAS included.
		return &opError{msg: redact(what + ": " + err.Error()), errs: []error{err}}
	}
	code := re.ErrorCode
	if code == "" {
		code = http.StatusText(re.StatusCode)
	}
	switch re.StatusCode {
	case http.StatusNotFound:
		if code == string(bloberror.ContainerNotFound) {
			return &opError{msg: fmt.Sprintf("%s: the container does not exist; check the URL, or create the container (az storage container create --name %s)", what, b.url.Container), errs: []error{err}}
		}
		return &opError{msg: fmt.Sprintf("%s: %v", what, storage.ErrNotFound), errs: []error{storage.ErrNotFound, err}}
	case http.StatusForbidden:
		return &opError{msg: fmt.Sprintf("%s: %v: %s", what, storage.ErrPermission, b.denied(op, code)), errs: []error{storage.ErrPermission, err}}
	}
	return &opError{msg: fmt.Sprintf("%s: HTTP %d %s", what, re.StatusCode, code), errs: []error{err}}
}

// denied explains a 403 with what the SAS says about itself.
func (b *Backend) denied(op, code string) string {
	need := perms[op]
	granted := b.url.Permissions
	switch {
	case !b.url.Expiry.IsZero() && time.Now().After(b.url.Expiry):
		return fmt.Sprintf("the SAS expired at %s; create a new one", b.url.Expiry.Format(time.RFC3339))
	case granted != "" && !strings.ContainsAny(granted, need.letters):
		return fmt.Sprintf("the SAS lacks %s permission (it grants %q); create a SAS that includes it", need.say, granted)
	case code == "AuthenticationFailed":
		return "Azure did not accept the SAS (AuthenticationFailed): it may be mistyped, revoked by a key rotation, or not valid yet (check this machine's clock); create a new SAS"
	case code == "AuthorizationFailure" || code == "AuthorizationSourceIPMismatch" || code == "AuthorizationProtocolMismatch":
		return fmt.Sprintf("Azure refused the request (%s): the account's firewall, the SAS's IP range or its https-only rule excludes this machine", code)
	case granted == "":
		return fmt.Sprintf("Azure refused the request (%s); check that the SAS grants %s permission", code, need.say)
	}
	return fmt.Sprintf("Azure refused the request (%s) although the SAS grants %q", code, granted)
}

func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// body is data as the seekable body the SDK needs to retry a request.
func body(data []byte) io.ReadSeekCloser { return nopCloser{bytes.NewReader(data)} }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
