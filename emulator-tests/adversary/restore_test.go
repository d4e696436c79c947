package adversary

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/fxamacker/cbor/v2"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/tree"
	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/shared/storage/azureblob"
	"github.com/coffer-backup/coffer/shared/wire"
)

// hostileTrees hands the restorer a forged root folder, never decoded or
// validated, and the repository's real trees for everything else.
type hostileTrees struct {
	repo *repository.Repository
	root crypto.ID
	tree *tree.Tree
}

func (h hostileTrees) LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error) {
	if id == h.root {
		return h.tree, nil
	}
	return h.repo.LoadTree(ctx, id)
}

// Attack 11: a tree fed to the restorer without tree.Decode names
// "../escaped", "..", an absolute path and a NUL, each with real content
// from the machine's repository, and a symlink out of the target that
// carries an ACL. On the old code "../escaped" was written outside the
// target. The restorer checks every name itself: nothing is written
// outside the target, each refused entry is named, and the rest restores.
// Stored as a real point and restored by the real agent, the tree is
// refused whole.
func TestHostileTreeCannotEscapeTheRestoreTarget(t *testing.T) {
	ctx := t.Context()
	m := fx.victim
	// What an attacker holding the machine has: its storage grant and its
	// passphrase.
	g := m.sas(t)
	be, err := azureblob.New(g.ContainerURL+"?"+g.SAS, azureblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := azsecrets.NewClient(fx.kv.URL(), keyvault.TokenCredential(m.kvToken), fx.kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	sec, err := kv.GetSecret(ctx, m.secret, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Open(ctx, be, []byte(*sec.Value), repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := repo.Points(ctx)
	if err != nil || len(ps) == 0 {
		t.Fatalf("points of %s: %d, %v", m.name, len(ps), err)
	}
	file, dir := findFileAndDir(t, repo, ps[0].Tree)

	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.Mkdir(outside, 0o755)
	target := filepath.Join(base, "target")
	named := func(name string, n tree.Node) tree.Node { n.Name = []byte(name); return n }
	forged := hostileTrees{repo: repo, root: crypto.ID{0xba, 0xd}, tree: &tree.Tree{Nodes: []tree.Node{
		named("../escaped", file),
		named("../../escaped-too", file),
		named("..", dir),
		named(".", dir),
		named(filepath.Join(outside, "absolute"), file),
		named("nul\x00byte", file),
		named("", file),
		{Name: []byte("link"), Type: tree.Symlink, LinkTarget: []byte(outside), WinSD: []byte("ACL: Everyone full control"), Mode: 0o777},
		named("ok.bin", file),
	}}}
	res, err := restorer.Restore(ctx, repo, &repository.Point{Tree: forged.root}, restorer.Options{Target: target, Trees: forged})
	if err != nil {
		t.Fatal(err)
	}

	var top []string
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		top = append(top, e.Name())
	}
	if !slices.Equal(top, []string{"outside", "target"}) {
		t.Errorf("beside the target the restore left %q; want only outside and target", top)
	}
	if inside, _ := os.ReadDir(outside); len(inside) > 0 {
		t.Errorf("the restore wrote %d entries into the folder the link points to", len(inside))
	}
	var in []string
	filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != target {
			rel, _ := filepath.Rel(target, p)
			in = append(in, rel)
		}
		return nil
	})
	if !slices.Equal(in, []string{"link", "ok.bin"}) {
		t.Errorf("the target holds %q; want link and ok.bin", in)
	}
	got, err := os.ReadFile(filepath.Join(target, "ok.bin"))
	if err != nil || int64(len(got)) != file.Size {
		t.Errorf("ok.bin restored with %d bytes, %v; want %d", len(got), err, file.Size)
	}
	refused := 0
	for _, f := range res.Failed {
		if strings.Contains(f.Err, restorer.ErrUnsafeName.Error()) {
			refused++
		}
	}
	if refused != 7 {
		t.Errorf("%d entries refused as unsafe, want 7: %+v", refused, res.Failed)
	}
	if bytes.Contains(got, []byte("ACL")) {
		t.Error("the ACL ended up in a file")
	}

	// The same tree stored as a real point of the machine, registered with
	// the control plane, restored by the real agent: tree.Decode refuses it
	// before anything is written.
	plain, err := cbor.Marshal(forged.tree)
	if err != nil {
		t.Fatal(err)
	}
	treeID := repo.BlobID(plain)
	w := repo.NewBlobWriter(ctx, repository.BlobWriterOptions{})
	if err := w.SaveBlob(ctx, repository.TreeBlob, treeID, plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	var packs []crypto.ID
	for _, id := range append([]crypto.ID{treeID}, chunkIDs(file)...) {
		if pk, ok := repo.BlobPack(id); ok && !slices.Contains(packs, pk) {
			packs = append(packs, pk)
		}
	}
	point := &repository.Point{Time: time.Now(), Paths: []string{m.src}, Tree: treeID}
	if err := repo.SavePoint(ctx, point, packs); err != nil {
		t.Fatal(err)
	}
	if _, err := m.agent(fx.cp).Do(ctx, "POST", wire.Version+"/agent/points", wire.NewPoint{ID: point.ID}, nil); err != nil {
		t.Fatalf("register the point with the forged tree: %v", err)
	}
	base2 := t.TempDir()
	target2 := filepath.Join(base2, "target")
	out, err := m.coffer(ctx, "restore", point.ID, "--target", target2, "--json")
	if err == nil || !strings.Contains(err.Error(), tree.ErrInvalid.Error()) {
		t.Errorf("coffer restore of the point with the forged tree: %v\n%s; want it refused as an invalid tree", err, out)
	}
	if entries, _ := os.ReadDir(base2); len(entries) > 1 || len(entries) == 1 && entries[0].Name() != "target" {
		t.Errorf("coffer restore wrote beside its target: %v", entries)
	}
	if inside, _ := os.ReadDir(outside); len(inside) > 0 {
		t.Errorf("coffer restore wrote %d entries into the folder the link points to", len(inside))
	}
}

func chunkIDs(n tree.Node) []crypto.ID {
	var ids []crypto.ID
	for _, r := range n.Content {
		if !r.Hole {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// findFileAndDir returns a file with content and a folder of the point.
func findFileAndDir(t *testing.T, repo *repository.Repository, root crypto.ID) (file, dir tree.Node) {
	t.Helper()
	var walk func(id crypto.ID) bool
	walk = func(id crypto.ID) bool {
		tr, err := repo.LoadTree(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes {
			switch {
			case n.Type == tree.File && len(n.Content) > 0 && file.Name == nil:
				file = n
			case n.Type == tree.Dir:
				if dir.Name == nil {
					dir = n
				}
				if walk(*n.Subtree) {
					return true
				}
			}
			if file.Name != nil && dir.Name != nil {
				return true
			}
		}
		return false
	}
	if !walk(root) {
		t.Fatal("the point has no file with content in a folder")
	}
	return file, dir
}
