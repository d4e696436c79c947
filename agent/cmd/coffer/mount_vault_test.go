package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/mount"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/storage/mem"
	"github.com/coffer-backup/coffer/shared/wire"
)

// In vault mode the mount shows the points the vault lists: a point
// soft-deleted there stays in the container until the purge but is not
// shown.
func TestMountInVaultModeLeavesOutPointsTheVaultDoesNotList(t *testing.T) {
	r, err := repository.Init(t.Context(), mem.New("vault-mount"), []byte("a passphrase of sixteen+ characters"), repository.Options{
		KDF: &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	var ids []string
	for _, content := range []string{"first", "second"} {
		os.WriteFile(filepath.Join(src, "f"), []byte(content), 0o644)
		res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Point.ID)
	}
	var vaultDown atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/agent/points") {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if vaultDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(wire.Error{Code: "unavailable", Message: "try again"})
			return
		}
		// The first point was soft-deleted: the vault lists only the second.
		json.NewEncoder(w).Encode([]wire.Point{{ID: ids[1], State: "active"}})
	}))
	defer srv.Close()
	f := repoFlags{session: &vault.Session{Client: &cpclient.Client{BaseURL: srv.URL}}}

	points, err := vaultPoints(f, mount.RepositoryPoints(r))(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 1 || points[0].ID != ids[1] {
		t.Fatalf("vault mode shows %d points, want only the one the vault lists (%s)", len(points), ids[1][:12])
	}
	vaultDown.Store(true)
	if _, err := vaultPoints(f, mount.RepositoryPoints(r))(t.Context()); err == nil {
		t.Fatal("with the vault unreachable, points were shown that it may have deleted")
	}
}
