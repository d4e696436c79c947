//go:build unix

package main

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
)

// The repository URL handed to Coffer must let a client with no other
// credential write, list, read and delete in its container.
func TestContainerSASGrantsWhatABackupNeeds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := azurite.Start(ctx, azurite.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start Azurite: %v", err)
	}
	defer a.Stop()
	url, err := containerSAS(ctx, a, "bench-test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithNoCredential(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := c.NewBlockBlobClient("packs/p1")
	if _, err := b.UploadBuffer(ctx, []byte("v1"), nil); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := b.UploadBuffer(ctx, []byte("v2"), nil); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	page, err := c.NewListBlobsFlatPager(nil).NextPage(ctx)
	if err != nil || len(page.Segment.BlobItems) != 1 {
		t.Fatalf("list: %v", err)
	}
	if _, err := b.Delete(ctx, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
}
