//go:build unix

// These tests are the engine's user stories, told against Azurite with real
// coffer processes and a container SAS that can create, read and list but
// never overwrite or delete: what a branch-office agent is given.
package backup_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/emulator-tests/azurite"
)

var (
	emu    *azurite.Azurite
	coffer string // the built binary
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "coffer-emulator-backup-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	coffer = filepath.Join(dir, "coffer")
	if out, err := exec.Command("go", "build", "-o", coffer, "github.com/coffer-backup/coffer/agent/cmd/coffer").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build coffer: %v\n%s", err, out)
		return 1
	}
	return azurite.Main(m, &emu)
}

const passphrase = "branch office passphrase, long enough"

// agentContainer makes a container and returns its URL with a SAS holding
// only the permissions an agent gets: create, read, list.
func agentContainer(t *testing.T) (sasURL string, admin *container.Client) {
	t.Helper()
	name := fmt.Sprintf("machine-%d", time.Now().UnixNano())
	if err := emu.NewContainer(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	u, err := emu.ContainerSAS(name, sas.ContainerPermissions{Create: true, Read: true, List: true}, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := azblob.NewClientFromConnectionString(emu.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return u, svc.ServiceClient().NewContainerClient(name)
}

type result struct {
	stdout, stderr string
	code           int
}

func runCoffer(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(coffer, args...)
	cmd.Env = append(os.Environ(), "COFFER_PASSPHRASE="+passphrase)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func mustCoffer(t *testing.T, args ...string) result {
	t.Helper()
	r := runCoffer(t, args...)
	if r.code != 0 {
		t.Fatalf("coffer %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

type summary struct {
	ID          string `json:"id"`
	BytesRead   int64  `json:"bytesRead"`
	BytesNew    int64  `json:"bytesNew"`
	BytesStored int64  `json:"bytesStored"`
}

func backupJSON(t *testing.T, repo, cache, src string) summary {
	t.Helper()
	r := mustCoffer(t, "backup", "--repo", repo, "--cache-dir", cache, "--json", src)
	var s summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("backup --json printed %q: %v", r.stdout, err)
	}
	return s
}

func blobNames(t *testing.T, c *container.Client) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	pager := c.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			out[*b.Name] = *b.Properties.ContentLength
		}
	}
	return out
}

func TestBackupToAzureWithACreateOnlySASAndRestoreByteForByte(t *testing.T) {
	repo, _ := agentContainer(t)
	src := filepath.Join(t.TempDir(), "office")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: 21, Files: 120, MaxSize: 200 << 10, BigFiles: 2, Special: true}); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	mustCoffer(t, "init", "--repo", repo)
	r := mustCoffer(t, "backup", "--repo", repo, "--cache-dir", cache, src)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	id := lines[len(lines)-1]
	if len(id) != 64 {
		t.Fatalf("the last line of backup output is %q, want the point ID", id)
	}
	if pts := mustCoffer(t, "points", "--repo", repo, "--json"); !strings.Contains(pts.stdout, id) {
		t.Fatalf("points does not list %s:\n%s", id, pts.stdout)
	}
	dst := t.TempDir()
	mustCoffer(t, "restore", "--repo", repo, "latest", "--target", dst)
	diffs, err := treegen.Diff(src, filepath.Join(dst, src))
	if err != nil || len(diffs) > 0 {
		t.Fatalf("restore from Azure differs (%v):\n%s", err, strings.Join(diffs, "\n"))
	}
	mustCoffer(t, "check", "--repo", repo, "--read-data")
}

func TestIncrementalBackupUploadsOnlyTheChangedData(t *testing.T) {
	repo, admin := agentContainer(t)
	src := filepath.Join(t.TempDir(), "office")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: 22, Files: 200, MaxSize: 100 << 10, BigFiles: 3}); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	mustCoffer(t, "init", "--repo", repo)
	first := backupJSON(t, repo, cache, src)
	before := blobNames(t, admin)

	same := backupJSON(t, repo, cache, src)
	// Nothing is read; only ancestor folders' listings (/tmp changes
	// under other processes) may be new.
	if same.BytesRead != 0 || same.BytesNew > 4<<10 {
		t.Fatalf("unchanged re-backup read %d and stored %d new bytes; want 0 read", same.BytesRead, same.BytesNew)
	}
	// Change one large file in one place and add a small one.
	f, _ := os.OpenFile(filepath.Join(src, "big1.bin"), os.O_WRONLY, 0)
	f.WriteAt([]byte("edited at the branch office"), 2<<20)
	f.Close()
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("a new file\n"), 0o644)
	mid := blobNames(t, admin)
	changed := backupJSON(t, repo, cache, src)
	after := blobNames(t, admin)

	var uploaded int64
	for name, size := range after {
		if _, ok := mid[name]; !ok {
			uploaded += size
		} else if mid[name] != size {
			t.Errorf("%s was rewritten", name)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			t.Errorf("%s disappeared", name)
		}
	}
	// The edit touches one or two 1 MiB-average chunks of one file; the
	// rest is metadata (trees, index, point).
	if changed.BytesNew > 9<<20 || uploaded > 10<<20 {
		t.Fatalf("after a small edit the backup uploaded %d bytes (%d new): more than the changed chunks", uploaded, changed.BytesNew)
	}
	// Only the two changed files were read, and what went up is a small
	// part of the first backup. (Which chunks an edit touches depends on
	// the repository's random chunker seed: one or two.)
	bigInfo, _ := os.Stat(filepath.Join(src, "big1.bin"))
	if want := bigInfo.Size() + int64(len("a new file\n")); changed.BytesRead != want {
		t.Fatalf("the incremental read %d bytes, want only the changed files' %d", changed.BytesRead, want)
	}
	if uploaded*4 > first.BytesStored {
		t.Fatalf("first backup stored %d bytes, the incremental uploaded %d: not incremental", first.BytesStored, uploaded)
	}
	dst := t.TempDir()
	mustCoffer(t, "restore", "--repo", repo, changed.ID[:12], "--target", dst)
	if diffs, _ := treegen.Diff(src, filepath.Join(dst, src)); len(diffs) > 0 {
		t.Fatalf("restore differs:\n%s", strings.Join(diffs, "\n"))
	}
}

func TestBackupKilledMidwayLeavesTheRepositoryValidAndTheNextOneReusesItsUploads(t *testing.T) {
	repo, admin := agentContainer(t)
	src := filepath.Join(t.TempDir(), "office")
	os.Mkdir(src, 0o755)
	// Incompressible data, so packs fill and upload steadily.
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 8 {
		b := make([]byte, 24<<20)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		os.WriteFile(filepath.Join(src, fmt.Sprintf("disk%d.img", i)), b, 0o644)
	}
	cache := t.TempDir()
	mustCoffer(t, "init", "--repo", repo)
	small := filepath.Join(src, "small")
	os.Mkdir(small, 0o755)
	os.WriteFile(filepath.Join(small, "a.txt"), []byte("first point\n"), 0o644)
	firstID := strings.TrimSpace(mustCoffer(t, "backup", "--repo", repo, "--cache-dir", cache, small).stdout)

	cmd := exec.Command(coffer, "backup", "--repo", repo, "--cache-dir", cache, src)
	cmd.Env = append(os.Environ(), "COFFER_PASSPHRASE="+passphrase)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		packs := 0
		for name := range blobNames(t, admin) {
			if strings.HasPrefix(name, "data/") {
				packs++
			}
		}
		if packs >= 3 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no packs were uploaded within 2 minutes")
		}
		time.Sleep(20 * time.Millisecond) // polling the container
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if cmd.ProcessState.Success() {
		t.Skip("the backup finished before it could be killed")
	}

	// The earlier point restores and the repository checks clean.
	mustCoffer(t, "check", "--repo", repo, "--read-data")
	dst := t.TempDir()
	mustCoffer(t, "restore", "--repo", repo, firstID[:12], "--target", dst)
	if b, _ := os.ReadFile(filepath.Join(dst, small, "a.txt")); string(b) != "first point\n" {
		t.Fatalf("earlier point restored %q", b)
	}
	// The next backup reuses what the killed one uploaded.
	s := backupJSON(t, repo, cache, src)
	if s.BytesNew >= s.BytesRead {
		t.Fatalf("after the kill the backup stored all %d bytes again", s.BytesNew)
	}
	dst2 := t.TempDir()
	mustCoffer(t, "restore", "--repo", repo, "latest", "--target", dst2)
	if diffs, _ := treegen.Diff(src, filepath.Join(dst2, src)); len(diffs) > 0 {
		t.Fatalf("restore differs:\n%s", strings.Join(diffs, "\n"))
	}
}
