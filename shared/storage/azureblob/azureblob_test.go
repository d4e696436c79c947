package azureblob_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/azureblob"
	"github.com/coffer-backup/coffer/shared/storage/storagetest"
)

var emus ondemand.Emulators

// TestMain stops the Azurite the tests started, if any; the URL tests need
// none, and under -short (make unit) the tests that do are skipped.
func TestMain(m *testing.M) { os.Exit(emus.Main(m)) }

// emulator is the package's Azurite, started by the first test that asks.
func emulator(t *testing.T) *azurite.Azurite {
	t.Helper()
	return emus.StartAzurite(t)
}

var (
	crl  = sas.ContainerPermissions{Create: true, Read: true, List: true}
	full = sas.ContainerPermissions{Create: true, Read: true, Write: true, List: true, Delete: true}
)

func sharedKeyClient(t *testing.T) *azblob.Client {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(emulator(t).ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var seq atomic.Int64

// newContainer creates a container with the account key, as an
// administrator would, and returns its name.
func newContainer(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("c%d-%d", time.Now().UnixNano(), seq.Add(1))
	if err := emulator(t).NewContainer(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

// sasURL is the container's URL with a SAS granting perms.
func sasURL(t *testing.T, cont string, perms sas.ContainerPermissions) string {
	t.Helper()
	u, err := emulator(t).ContainerSAS(cont, perms, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func openWith(perms sas.ContainerPermissions, o azureblob.Options) func(t *testing.T) storage.Backend {
	return func(t *testing.T) storage.Backend {
		b, err := azureblob.New(sasURL(t, newContainer(t), perms), o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// The agent's SAS: create, read, list. Staging blocks needs write, so
// every object, the 20 MiB one too, goes in one request.
func TestConformanceCreateReadListSAS(t *testing.T) {
	storagetest.RunWith(t, openWith(crl, azureblob.Options{BlockSize: 1 << 20}), storagetest.Options{NoDelete: true})
}

// Maintenance's SAS. Small blocks make the racing writers and the large
// object go through staged blocks.
func TestConformanceFullSAS(t *testing.T) {
	storagetest.Run(t, openWith(full, azureblob.Options{BlockSize: 1 << 20}))
}

func TestLargeObjectIsUploadedInBlocks(t *testing.T) {
	cont := newContainer(t)
	b, err := azureblob.New(sasURL(t, cont, sas.ContainerPermissions{Create: true, Read: true, Write: true, List: true}),
		azureblob.Options{BlockSize: 4 << 20, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 20<<20)
	rand.Read(want)
	if err := b.Create(t.Context(), "data/ab/pack", want); err != nil {
		t.Fatalf("Create: %v", err)
	}
	bl, err := sharedKeyClient(t).ServiceClient().NewContainerClient(cont).NewBlockBlobClient("data/ab/pack").
		GetBlockList(t.Context(), blockblob.BlockListTypeAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bl.UncommittedBlocks) != 0 {
		t.Errorf("%d blocks left uncommitted", len(bl.UncommittedBlocks))
	}
	if len(bl.CommittedBlocks) != 5 {
		t.Fatalf("blob has %d committed blocks, want 5 of 4 MiB", len(bl.CommittedBlocks))
	}
	for i, blk := range bl.CommittedBlocks {
		if *blk.Size != 4<<20 {
			t.Errorf("block %d is %d bytes, want 4 MiB", i, *blk.Size)
		}
	}
	got, err := storage.ReadAll(t.Context(), b, "data/ab/pack")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the object read back differs from the one written")
	}
	// The name is taken: a second upload is refused before sending blocks.
	if err := b.Create(t.Context(), "data/ab/pack", want[:5<<20]); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Create: got %v, want ErrExists", err)
	}
}

// Under the agent's create-only SAS a large object goes in one Put Blob,
// which needs no write permission.
func TestLargeObjectWithCreateReadListSAS(t *testing.T) {
	cont := newContainer(t)
	b, err := azureblob.New(sasURL(t, cont, crl), azureblob.Options{BlockSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 20<<20)
	rand.Read(want)
	if err := b.Create(t.Context(), "data/ab/pack", want); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := storage.ReadAll(t.Context(), b, "data/ab/pack")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, %v; want the %d written", len(got), err, len(want))
	}
	if err := b.Create(t.Context(), "data/ab/pack", want); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Create: got %v, want ErrExists", err)
	}
}

func TestDeleteWithCreateReadListSASIsErrPermission(t *testing.T) {
	u := sasURL(t, newContainer(t), crl)
	b, err := azureblob.New(u, azureblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Create(t.Context(), "x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	err = b.Delete(t.Context(), "x")
	if !errors.Is(err, storage.ErrPermission) {
		t.Fatalf("Delete: got %v, want ErrPermission", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `delete ("d")`) {
		t.Errorf("message %q does not say the SAS lacks delete permission", msg)
	}
	sig := mustQuery(t, u).Get("sig")
	if strings.Contains(msg, sig) || strings.Contains(msg, url.QueryEscape(sig)) {
		t.Errorf("message %q contains the SAS signature", msg)
	}
}

func TestWithoutListPermissionListIsErrPermission(t *testing.T) {
	b, err := azureblob.New(sasURL(t, newContainer(t), sas.ContainerPermissions{Create: true, Read: true}), azureblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.List(t.Context(), "", func(storage.Info) error { return nil })
	if !errors.Is(err, storage.ErrPermission) || !strings.Contains(err.Error(), `list ("l")`) {
		t.Fatalf("List: got %v, want ErrPermission naming list", err)
	}
}

func TestBadSignatureIsErrPermission(t *testing.T) {
	cont := newContainer(t)
	q := mustQuery(t, sasURL(t, cont, crl))
	q.Set("sig", "AAAA"+q.Get("sig")[4:])
	b, err := azureblob.New(emulator(t).BlobURL()+"/"+cont+"?"+q.Encode(), azureblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Stat(t.Context(), "x")
	if !errors.Is(err, storage.ErrPermission) {
		t.Fatalf("Stat with a bad signature: got %v, want ErrPermission", err)
	}
	if strings.Contains(err.Error(), q.Get("sig")) {
		t.Errorf("message %q contains the SAS signature", err)
	}
}

func TestMissingContainerIsNotErrNotFound(t *testing.T) {
	b, err := azureblob.New(sasURL(t, "nosuchcontainer", full), azureblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Stat(t.Context(), "config")
	if err == nil {
		t.Fatal("Stat in a missing container succeeded")
	}
	// Saying "object not found" would read as "no repository here yet".
	if errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "container does not exist") {
		t.Fatalf("Stat in a missing container: got %v, want an error saying the container does not exist", err)
	}
	err = b.List(t.Context(), "", func(storage.Info) error { return nil })
	if err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "container does not exist") {
		t.Fatalf("List in a missing container: got %v, want an error saying the container does not exist", err)
	}
}

func TestLocationHasNoSAS(t *testing.T) {
	cont := newContainer(t)
	b, err := azureblob.New(sasURL(t, cont, crl), azureblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := emulator(t).BlobURL() + "/" + cont; b.Location() != want {
		t.Fatalf("Location() = %q, want %q", b.Location(), want)
	}
}

func mustQuery(t *testing.T, s string) url.Values {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}
