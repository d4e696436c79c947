package azurite_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
)

var emu *azurite.Azurite

func TestMain(m *testing.M) { os.Exit(azurite.Main(m, &emu)) }

func blobClient(t *testing.T) *azblob.Client {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(emu.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newContainer(t *testing.T, c *azblob.Client) string {
	t.Helper()
	name := fmt.Sprintf("c%d", time.Now().UnixNano())
	if _, err := c.CreateContainer(t.Context(), name, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	return name
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestBlobWrittenIsReadBack(t *testing.T) {
	c := blobClient(t)
	cont := newContainer(t, c)
	want := bytes.Repeat([]byte("coffer "), 1000)
	if _, err := c.UploadBuffer(t.Context(), cont, "a/b.txt", want, nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	got, err := c.DownloadStream(t.Context(), cont, "a/b.txt", nil)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer got.Body.Close()
	b, _ := io.ReadAll(got.Body)
	if !bytes.Equal(b, want) {
		t.Fatalf("read back %d bytes, want %d identical bytes", len(b), len(want))
	}
}

// Large uploads go as staged blocks committed in one list.
func TestStagedBlocksCommitInOrder(t *testing.T) {
	c := blobClient(t)
	cont := newContainer(t, c)
	bb := c.ServiceClient().NewContainerClient(cont).NewBlockBlobClient("pack")
	var ids []string
	var want []byte
	for i := range 3 {
		id := blockID(i)
		part := bytes.Repeat([]byte{byte('a' + i)}, 1<<20)
		if _, err := bb.StageBlock(t.Context(), id, nopCloser(part), nil); err != nil {
			t.Fatalf("stage block %d: %v", i, err)
		}
		ids = append(ids, id)
		want = append(want, part...)
	}
	// Nothing is visible before the commit.
	if _, err := bb.GetProperties(t.Context(), nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Fatalf("uncommitted blob: got %v, want BlobNotFound", err)
	}
	if _, err := bb.CommitBlockList(t.Context(), ids, nil); err != nil {
		t.Fatalf("commit: %v", err)
	}
	resp, err := bb.DownloadStream(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, want) {
		t.Fatal("committed blob differs from the staged blocks in order")
	}
}

// If-None-Match: * is how a writer creates an object only if it is new.
func TestIfNoneMatchStarRefusesOverwrite(t *testing.T) {
	c := blobClient(t)
	cont := newContainer(t, c)
	onlyNew := &azblob.UploadBufferOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}}
	if _, err := c.UploadBuffer(t.Context(), cont, "x", []byte("1"), onlyNew); err != nil {
		t.Fatalf("first create: %v", err)
	}
	_, err := c.UploadBuffer(t.Context(), cont, "x", []byte("2"), onlyNew)
	if !bloberror.HasCode(err, bloberror.BlobAlreadyExists) {
		t.Fatalf("second create: got %v, want BlobAlreadyExists", err)
	}
}

// The agent's SAS grants create, read and list only: it can add objects but
// never overwrite or delete one. Azurite enforces that as Azure does.
func TestCreateReadListSASCannotOverwriteOrDelete(t *testing.T) {
	c := blobClient(t)
	cont := newContainer(t, c)
	sasURL, err := emu.ContainerSAS(cont, sas.ContainerPermissions{Create: true, Read: true, List: true}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	agent, err := container.NewClientWithNoCredential(sasURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj := agent.NewBlockBlobClient("packs/p1")
	if _, err := obj.UploadBuffer(t.Context(), []byte("v1"), nil); err != nil {
		t.Fatalf("create with c,r,l SAS: %v", err)
	}
	if _, err := obj.UploadBuffer(t.Context(), []byte("v2"), nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("overwrite with c,r,l SAS: got %v, want 403", err)
	}
	if _, err := obj.Delete(t.Context(), nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("delete with c,r,l SAS: got %v, want 403", err)
	}
	resp, err := obj.DownloadStream(t.Context(), nil)
	if err != nil {
		t.Fatalf("read with c,r,l SAS: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "v1" {
		t.Fatalf("after refused overwrite the blob holds %q, want v1", b)
	}
	pager := agent.NewListBlobsFlatPager(nil)
	page, err := pager.NextPage(t.Context())
	if err != nil {
		t.Fatalf("list with c,r,l SAS: %v", err)
	}
	if len(page.Segment.BlobItems) != 1 || *page.Segment.BlobItems[0].Name != "packs/p1" {
		t.Fatalf("list returned %d items, want packs/p1 only", len(page.Segment.BlobItems))
	}
}

func TestBlobIndexTags(t *testing.T) {
	c := blobClient(t)
	cont := newContainer(t, c)
	if _, err := c.UploadBuffer(t.Context(), cont, "tagged", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	b := c.ServiceClient().NewContainerClient(cont).NewBlobClient("tagged")
	if _, err := b.SetTags(t.Context(), map[string]string{"point": "p1"}, nil); err != nil {
		t.Fatalf("set tags: %v", err)
	}
	got, err := b.GetTags(t.Context(), nil)
	if err != nil {
		t.Fatalf("get tags: %v", err)
	}
	if len(got.BlobTagSet) != 1 || *got.BlobTagSet[0].Key != "point" || *got.BlobTagSet[0].Value != "p1" {
		t.Fatalf("tags = %+v, want point=p1", got.BlobTagSet)
	}
}

func tableClient(t *testing.T) *aztables.Client {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t%d", time.Now().UnixNano())
	if _, err := svc.CreateTable(t.Context(), name, nil); err != nil {
		t.Fatalf("create table: %v", err)
	}
	return svc.NewClient(name)
}

func entity(t *testing.T, pk, rk string, props map[string]any) []byte {
	t.Helper()
	m := map[string]any{"PartitionKey": pk, "RowKey": rk}
	for k, v := range props {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Jobs and vaults are table rows updated under optimistic concurrency.
func TestTableRowsUseETagConcurrency(t *testing.T) {
	tc := tableClient(t)
	added, err := tc.AddEntity(t.Context(), entity(t, "vault1", "job1", map[string]any{"Status": "InProgress"}), nil)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if _, err := tc.AddEntity(t.Context(), entity(t, "vault1", "job1", nil), nil); statusOf(err) != http.StatusConflict {
		t.Fatalf("add duplicate: got %v, want 409", err)
	}
	got, err := tc.GetEntity(t.Context(), "vault1", "job1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var row map[string]any
	json.Unmarshal(got.Value, &row)
	if row["Status"] != "InProgress" {
		t.Fatalf("row = %v", row)
	}
	upd, err := tc.UpdateEntity(t.Context(), entity(t, "vault1", "job1", map[string]any{"Status": "Completed"}),
		&aztables.UpdateEntityOptions{IfMatch: &added.ETag, UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		t.Fatalf("update with current ETag: %v", err)
	}
	if upd.ETag == added.ETag {
		t.Fatal("update did not change the ETag")
	}
	_, err = tc.UpdateEntity(t.Context(), entity(t, "vault1", "job1", map[string]any{"Status": "Failed"}),
		&aztables.UpdateEntityOptions{IfMatch: &added.ETag, UpdateMode: aztables.UpdateModeReplace})
	if statusOf(err) != http.StatusPreconditionFailed {
		t.Fatalf("update with stale ETag: got %v, want 412", err)
	}
}

func TestTableTransactionIsAllOrNothing(t *testing.T) {
	tc := tableClient(t)
	ok := []aztables.TransactionAction{
		{ActionType: aztables.TransactionTypeAdd, Entity: entity(t, "p", "1", nil)},
		{ActionType: aztables.TransactionTypeAdd, Entity: entity(t, "p", "2", nil)},
	}
	if _, err := tc.SubmitTransaction(t.Context(), ok, nil); err != nil {
		t.Fatalf("transaction: %v", err)
	}
	bad := []aztables.TransactionAction{
		{ActionType: aztables.TransactionTypeAdd, Entity: entity(t, "p", "3", nil)},
		{ActionType: aztables.TransactionTypeAdd, Entity: entity(t, "p", "1", nil)}, // exists
	}
	if _, err := tc.SubmitTransaction(t.Context(), bad, nil); err == nil {
		t.Fatal("a transaction with a conflicting add succeeded")
	}
	if _, err := tc.GetEntity(t.Context(), "p", "3", nil); statusOf(err) != http.StatusNotFound {
		t.Fatalf("row 3 of the failed transaction: got %v, want 404", err)
	}
	var n int
	pager := tc.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: to.Ptr("PartitionKey eq 'p'")})
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Entities)
	}
	if n != 2 {
		t.Fatalf("partition holds %d rows, want 2", n)
	}
}

func TestQueueMessageRoundTrip(t *testing.T) {
	svc, err := azqueue.NewServiceClientFromConnectionString(emu.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("q%d", time.Now().UnixNano())
	if _, err := svc.CreateQueue(t.Context(), name, nil); err != nil {
		t.Fatalf("create queue: %v", err)
	}
	q := svc.NewQueueClient(name)
	if _, err := q.EnqueueMessage(t.Context(), "hello", nil); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	got, err := q.DequeueMessage(t.Context(), nil)
	if err != nil {
		t.Fatalf("dequeue: %v", err)
	}
	if len(got.Messages) != 1 || *got.Messages[0].MessageText != "hello" {
		t.Fatalf("dequeued %+v, want one message 'hello'", got.Messages)
	}
	if _, err := q.DeleteMessage(t.Context(), *got.Messages[0].MessageID, *got.Messages[0].PopReceipt, nil); err != nil {
		t.Fatalf("delete message: %v", err)
	}
}

// blockID makes the base64 block IDs Azure requires, all of one length.
func blockID(i int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "block-%06d", i))
}

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

func nopCloser(b []byte) readSeekNopCloser { return readSeekNopCloser{bytes.NewReader(b)} }
