package repository

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

const configBase = `"version": 1, "id": "ab", "created": "2026-11-22T10:00:00Z",
	"chunker": {"Min": 524288, "Avg": 1048576, "Max": 8388608}, "packSize": 16777216`

func TestDecodeConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string // appended to configBase
		want  compress.Mode
		err   string
	}{
		{"absent: written before the setting", ``, compress.Auto, ""},
		{"null", `, "compression": null`, compress.Auto, ""},
		{"auto", `, "compression": "auto"`, compress.Auto, ""},
		{"fastest", `, "compression": "fastest"`, compress.Fastest, ""},
		{"default", `, "compression": "default"`, compress.Default, ""},
		{"max", `, "compression": "max"`, compress.Max, ""},
		// A newer release's mode: read as usual, written as with auto.
		{"unknown name", `, "compression": "ultra"`, compress.Auto, ""},
		{"empty name", `, "compression": ""`, compress.Auto, ""},
		{"not a string", `, "compression": 3`, 0, "damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := decodeConfig([]byte("{" + configBase + tc.extra + "}"))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Compression != tc.want || cfg.PackSize != 16<<20 || cfg.ID != "ab" {
				t.Fatalf("decoded %+v", cfg)
			}
		})
	}
	for _, bad := range []string{
		`{"version": 3, "chunker": {"Min": 524288, "Avg": 1048576, "Max": 8388608}, "packSize": 16777216}`,
		`{"version": 0, "chunker": {"Min": 524288, "Avg": 1048576, "Max": 8388608}, "packSize": 16777216}`,
		`{"version": 1, "chunker": {"Min": 0, "Avg": 0, "Max": 0}, "packSize": 16777216}`,
		`{"version": 1, "chunker": {"Min": 524288, "Avg": 1048576, "Max": 8388608}, "packSize": 5}`,
		`not json`,
	} {
		if _, err := decodeConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte("{" + configBase + "}"))
	f.Add([]byte("{" + configBase + `, "compression": "max"}`))
	f.Add([]byte("{" + configBase + `, "compression": "ultra"}`))
	f.Add([]byte(`{"compression": 7}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := decodeConfig(b)
		if err != nil {
			return
		}
		// What is accepted writes back as a config that decodes the same.
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		again, err := decodeConfig(out)
		if err != nil || again.Compression != cfg.Compression || again.Chunker != cfg.Chunker || again.PackSize != cfg.PackSize {
			t.Fatalf("re-decoded %+v, %v; want %+v", again, err, cfg)
		}
	})
}

// noReplace hides the backend's Replace, as create-only storage has none.
type noReplace struct{ storage.Backend }

func TestCompressionChangeAffectsNewDataOnly(t *testing.T) {
	ctx := t.Context()
	r, f := blobTestRepo(t)
	if r.Config().Compression != compress.Auto {
		t.Fatalf("new repository compression %v, want auto", r.Config().Compression)
	}
	stored, err := storage.ReadAll(ctx, f, layout.Config)
	if err != nil || !bytes.Contains(stored, []byte(`"compression": "auto"`)) {
		t.Fatalf("stored config %s (%v) does not name its compression", stored, err)
	}
	if err := r.SetCompression(ctx, compress.Fastest); err != nil {
		t.Fatal(err)
	}
	// Old text, written at the fastest level.
	old := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog; ", 8000))
	w := r.NewBlobWriter(ctx, BlobWriterOptions{})
	if err := w.SaveBlob(ctx, DataBlob, r.BlobID(old), old); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	oldLoc, _ := r.Index().Lookup(r.BlobID(old))

	if err := r.SetCompression(ctx, compress.Max); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(ctx, f, []byte(blobTestPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r2.Config(); got.Compression != compress.Max || got.ID != r.Config().ID || got.PackSize != 1<<20 || got.Chunker != r.Config().Chunker {
		t.Fatalf("reopened config %+v; want only the compression changed", got)
	}
	if _, err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	newer := append(bytes.Clone(old), " and then some"...)
	w = r2.NewBlobWriter(ctx, BlobWriterOptions{})
	if err := w.SaveBlob(ctx, DataBlob, r2.BlobID(newer), newer); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{old, newer} {
		got, err := r2.LoadBlob(ctx, r2.BlobID(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("load after the change: %v", err)
		}
	}
	oldAfter, _ := r2.Index().Lookup(r2.BlobID(old))
	if oldAfter.Pack != oldLoc.Pack || oldAfter.Length != oldLoc.Length {
		t.Fatalf("old blob moved or changed: %+v, was %+v", oldAfter, oldLoc)
	}
	newLoc, _ := r2.Index().Lookup(r2.BlobID(newer))
	if newLoc.Length >= oldLoc.Length {
		t.Errorf("max stored %d bytes, fastest %d for almost the same text", newLoc.Length, oldLoc.Length)
	}
}

func TestSetCompressionRefused(t *testing.T) {
	ctx := t.Context()
	r, f := blobTestRepo(t)
	if err := r.SetCompression(ctx, compress.Mode(9)); !errors.Is(err, compress.ErrUnknownMode) {
		t.Fatalf("unknown mode: err = %v", err)
	}
	r2, err := Open(ctx, noReplace{f}, []byte(blobTestPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.SetCompression(ctx, compress.Max); !errors.Is(err, storage.ErrPermission) {
		t.Fatalf("create-only storage: err = %v, want ErrPermission", err)
	}
	if r2.Config().Compression != compress.Auto {
		t.Fatal("the refused change took effect in memory")
	}
}

func TestInitCompression(t *testing.T) {
	r, err := Init(t.Context(), mem.New(t.Name()), []byte(blobTestPass), Options{KDF: &crypto.KDFParams{Algorithm: crypto.AlgorithmArgon2id, Time: 1, MemoryKiB: 8 << 10, Threads: 1}, Compression: compress.Max})
	if err != nil {
		t.Fatal(err)
	}
	if r.Config().Compression != compress.Max {
		t.Fatalf("compression %v", r.Config().Compression)
	}
	if _, err := Init(t.Context(), mem.New(t.Name()+"2"), []byte(blobTestPass), Options{KDF: &crypto.KDFParams{Algorithm: crypto.AlgorithmArgon2id, Time: 1, MemoryKiB: 8 << 10, Threads: 1}, Compression: 9}); !errors.Is(err, compress.ErrUnknownMode) {
		t.Fatalf("Init with an unknown mode: %v", err)
	}
}
