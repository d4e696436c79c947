//go:build unix

package torture

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage/local"
)

// pruneKills is how many prunes of a local repository a run kills.
const pruneKills = 8

// Real `coffer prune` processes, after a `coffer forget`, killed with
// SIGKILL at random moments from start to finish. After each kill
// `coffer check --read-data` passes, every point forget kept is still
// listed, and the latest restores byte for byte; the next backup is not
// refused for the lock the killed prune left, and the next prune takes
// that lock over and finishes.
func TestPrunesKilledAtRandomMomentsLeaveASoundRepository(t *testing.T) {
	skipShort(t)
	t.Parallel()
	rng := rng(t)
	dir := t.TempDir()
	repo, src, env, backup := localWorkspace(dir)
	pruneInitSmallPacks(t, repo)
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(src, treegen.Options{Seed: rng.Uint64(), Files: 60, MaxSize: 300 << 10, BigFiles: 1, Special: true}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		mustCoffer(t, env, backup...)
		mutate(t, rng, src, 2<<20)
	}

	// How long a whole prune takes here and now sets the range of kill
	// moments; it also starts the rounds from a pruned repository.
	start := time.Now()
	mustCoffer(t, env, "prune", "--repo", repo, "--max-unused", "0%")
	took := time.Since(start)
	hit := 0
	for i := range pruneKills {
		mustCoffer(t, env, backup...) // not refused for a killed prune's lock
		mutate(t, rng, src, 2<<20)
		mustCoffer(t, env, backup...)
		mustCoffer(t, env, "forget", "--repo", repo, "--keep-last", "2")
		kept := prunePointIDs(t, env, repo)

		at := time.Duration(rng.Int64N(int64(took) + 1))
		if killAt(t, env, at, "prune", "--repo", repo, "--max-unused", "0%") {
			hit++
		}
		if r := runCoffer(env, "check", "--repo", repo, "--read-data"); r.err != nil {
			t.Fatalf("kill %d at %v: check --read-data: %s", i+1, at, r)
		}
		if got := prunePointIDs(t, env, repo); !slices.Equal(got, kept) {
			t.Fatalf("kill %d at %v: points %v, want those forget kept %v", i+1, at, got, kept)
		}
		dst := t.TempDir()
		mustCoffer(t, env, "restore", "--repo", repo, "latest", "--target", dst)
		if diffs, err := treegen.Diff(src, filepath.Join(dst, src)); err != nil || len(diffs) > 0 {
			t.Fatalf("kill %d at %v: the latest point restores differently: %v\n%s", i+1, at, err, strings.Join(diffs, "\n"))
		}
		if i%2 == 1 {
			// Every other round a prune finishes what the killed one began.
			start := time.Now()
			r := mustCoffer(t, env, "prune", "--repo", repo, "--max-unused", "0%", "--json")
			var st struct{ PacksDeleted, PacksRepacked int }
			if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
				t.Fatalf("prune --json printed %q: %v", r.stdout, err)
			}
			if st.PacksDeleted+st.PacksRepacked > 0 {
				// Less work than a whole round's prune, so kills land
				// within it more often; an idle prune says nothing.
				took = time.Since(start)
			}
			if r := runCoffer(env, "check", "--repo", repo, "--read-data"); r.err != nil {
				t.Fatalf("round %d: check --read-data after a whole prune: %s", i+1, r)
			}
		}
	}
	t.Logf("%d of %d kills landed during a prune (a whole prune took %v)", hit, pruneKills, took)
}

// pruneInitSmallPacks creates a local repository with 1 MiB packs and
// 64 KiB chunks, so a small tree fills many packs, most shared by several
// points, and forgetting points leaves partly used packs to repack.
func pruneInitSmallPacks(t *testing.T, dir string) {
	t.Helper()
	be, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repository.Init(t.Context(), be, []byte(passphrase), repository.Options{
		KDF: cheapKDF, PackSize: 1 << 20, Chunker: &chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10},
	}); err != nil {
		t.Fatal(err)
	}
}

// prunePointIDs are the IDs `coffer points` lists, sorted.
func prunePointIDs(t *testing.T, env []string, repo string) []string {
	t.Helper()
	r := mustCoffer(t, env, "points", "--repo", repo, "--json")
	var list []struct{ ID string }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("coffer points --json printed %q: %v", r.stdout, err)
	}
	var ids []string
	for _, p := range list {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

// Real `coffer backup` and `coffer prune` processes run at once, started
// at random offsets: each backup either saves a whole point or is refused
// with a message saying a prune ran, and `coffer check --read-data`
// passes after every round.
func TestBackupsDuringPrunesAreSafeOrRefused(t *testing.T) {
	skipShort(t)
	t.Parallel()
	rng := rng(t)
	dir := t.TempDir()
	repo, cache, src := filepath.Join(dir, "repo"), filepath.Join(dir, "cache"), filepath.Join(dir, "office")
	env := []string{"COFFER_PASSPHRASE=" + passphrase, "COFFER_REPOSITORY=", "COFFER_CONFIG_DIR=" + filepath.Join(dir, "no-config"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "xdg")}
	backup := []string{"backup", "--repo", repo, "--cache-dir", cache, src}
	pruneInitSmallPacks(t, repo)
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(src, treegen.Options{Seed: rng.Uint64(), Files: 40, MaxSize: 200 << 10, BigFiles: 1, Special: true}); err != nil {
		t.Fatal(err)
	}
	mustCoffer(t, env, backup...)
	refused := 0
	const rounds = 6
	for i := range rounds {
		mutate(t, rng, src, 2<<20)
		mustCoffer(t, env, backup...)
		mustCoffer(t, env, "forget", "--repo", repo, "--keep-last", "1")
		mutate(t, rng, src, 2<<20)
		done := make(chan result, 1)
		go func() { done <- runCoffer(env, backup...) }()
		time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond)))) // a random offset between the two starts, not a wait for a condition
		pr := runCoffer(env, "prune", "--repo", repo, "--max-unused", "0%")
		br := <-done
		if pr.err != nil && !strings.Contains(pr.stderr, "during the prune") {
			t.Fatalf("round %d: prune: %s", i+1, pr)
		}
		if br.err != nil {
			if !strings.Contains(br.stderr, "a prune ran on the repository during this backup") {
				t.Fatalf("round %d: a backup beside a prune failed without saying why: %s", i+1, br)
			}
			refused++
		}
		if r := runCoffer(env, "check", "--repo", repo, "--read-data"); r.err != nil {
			t.Fatalf("round %d: check --read-data: %s", i+1, r)
		}
	}
	t.Logf("%d of %d backups beside a prune were refused", refused, rounds)
	// The latest point is whole: a last backup, alone, restores the source.
	mustCoffer(t, env, backup...)
	dst := t.TempDir()
	mustCoffer(t, env, "restore", "--repo", repo, "latest", "--target", dst)
	if diffs, err := treegen.Diff(src, filepath.Join(dst, src)); err != nil || len(diffs) > 0 {
		t.Fatalf("the latest point restores differently: %v\n%s", err, strings.Join(diffs, "\n"))
	}
}
