package azureblob

import (
	"context"
	"crypto/md5"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Replace overwrites an existing blob with data in one Put Blob, which
// Azure applies atomically: readers see the old content or the new, never
// neither. Only trusted maintenance uses it (prune rewrites a point's pack
// reference list); it needs a SAS with write ("w") permission.
func (b *Backend) Replace(ctx context.Context, name string, data []byte) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sum := md5.Sum(data)
	_, err := b.c.NewBlockBlobClient(name).Upload(ctx, body(data), &blockblob.UploadOptions{
		// The blob must exist: If-Match * fails with 412 otherwise.
		AccessConditions:        &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to.Ptr(azcore.ETagAny)}},
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
	})
	if err != nil {
		return b.mapErr("replace", name, err)
	}
	return nil
}
