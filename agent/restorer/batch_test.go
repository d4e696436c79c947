package restorer_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/tree"
	"github.com/coffer-backup/coffer/agent/treegen"
)

// A restore is planned and fetched a batch at a time. With batches of
// three files, a file whose chunks another batch also needs (a copy in a
// far folder) and a hard link whose names land in different batches still
// restore exactly.
func TestARestoreInManyBatchesIsExact(t *testing.T) {
	restorer.SetBatchFiles(t, 3)
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: 7, Files: 60, MaxSize: 300 << 10, BigFiles: 1}); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 20 {
		t.Fatalf("only %d files generated", len(files))
	}
	far := filepath.Join(src, "zz-far")
	os.Mkdir(far, 0o755)
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(far, "copy-of-first"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(files[1], filepath.Join(far, "second-name")); err != nil {
		t.Skipf("this file system cannot make hard links: %v", err)
	}

	r := newRepo(t)
	res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	prog := &restorer.Progress{}
	restored := restoreExactly(t, reopen(t, r), res.Point, src, restorer.Options{Progress: prog})
	a, errA := os.Stat(filepath.Join(restored, strings.TrimPrefix(files[1], src)))
	c, errC := os.Stat(filepath.Join(restored, "zz-far", "second-name"))
	if errA != nil || errC != nil || !os.SameFile(a, c) {
		t.Errorf("the two names of the hard link are not one file again: %v, %v", errA, errC)
	}
	if !prog.PlanDone.Load() || prog.FilesDone.Load() != prog.FilesTotal.Load() || prog.BytesDone.Load() != prog.BytesTotal.Load() {
		t.Errorf("progress at the end: plan done %v, files %d/%d, bytes %d/%d", prog.PlanDone.Load(),
			prog.FilesDone.Load(), prog.FilesTotal.Load(), prog.BytesDone.Load(), prog.BytesTotal.Load())
	}
}

// WriteContent streams a file of many chunks, compressed and stored ones
// in turn, through reused buffers: the bytes come out in order and whole.
func TestWriteContentStreamsManyChunksInOrder(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	var want []byte
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 60 {
		block := make([]byte, 40<<10+rng.IntN(40<<10))
		if i%2 == 0 {
			for j := range block {
				block[j] = byte(rng.IntN(256))
			}
		} else {
			copy(block, bytes.Repeat([]byte(fmt.Sprintf("line %d of some text\n", i)), len(block)))
		}
		want = append(want, block...)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r2 := reopen(t, r)
	// The point holds src's path folder by folder (and a volume on
	// Windows) down to the one file.
	var n *tree.Node
	for id := res.Point.Tree; n == nil; {
		tr, err := r2.LoadTree(t.Context(), id)
		if err != nil || len(tr.Nodes) != 1 {
			t.Fatalf("a folder on the way holds %v (%v)", tr, err)
		}
		if tr.Nodes[0].Type == tree.File {
			n = &tr.Nodes[0]
		} else {
			id = *tr.Nodes[0].Subtree
		}
	}
	if len(n.Content) < 10 {
		t.Fatalf("only %d chunks: the test needs many", len(n.Content))
	}
	var got bytes.Buffer
	if err := restorer.WriteContent(t.Context(), r2, n.Content, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("streamed %d bytes that differ from the file's %d", got.Len(), len(want))
	}
}
