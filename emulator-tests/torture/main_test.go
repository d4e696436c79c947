//go:build unix

// Package torture kills Coffer backups at random moments and checks what
// they leave behind: after every kill, the next backup succeeds and
// `coffer check --read-data` finds nothing wrong.
//
//   - In process, a fault-injecting backend stops storage right after each
//     write of a small backup in turn, which reaches every crash point,
//     including the narrow one between a point's pack list and the point.
//   - Real `coffer backup` processes on a local repository are killed with
//     SIGKILL at random moments.
//   - Real `coffer run` processes (the managed agent) on the local Azure
//     stack are killed with SIGKILL during their scheduled backups.
//   - Real `coffer prune` processes, after `coffer forget`, are killed with
//     SIGKILL at random moments, and run beside backups (prune_kill_test.go).
//
// Each run draws a new random seed and logs it; COFFER_TORTURE_SEED=<seed>
// replays one. Over many runs the kills land everywhere.
package torture

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
)

var (
	coffer string // the agent binary, built once for the package
	emus   ondemand.Emulators
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "coffer-torture-")
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
	return emus.Main(m)
}

// EnvSeed replays a run: set it to the seed a failed run logged.
const EnvSeed = "COFFER_TORTURE_SEED"

// rng returns a generator seeded from $COFFER_TORTURE_SEED or afresh, and
// logs the seed so a failure can be replayed.
func rng(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(EnvSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q is not a number", EnvSeed, s)
		}
		seed = v
	}
	t.Logf("seed %d (replay with %s=%d)", seed, EnvSeed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x5deece66d))
}

// skipShort: the kill tests run real processes for tens of seconds.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("kills real coffer processes for tens of seconds; skipped under -short, run by make test")
	}
}

// result is one finished coffer process.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("%v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
}

// runCoffer runs the agent to completion with env added to the test's.
func runCoffer(env []string, args ...string) result {
	cmd := exec.Command(coffer, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{out.String(), errb.String(), err}
}

func mustCoffer(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := runCoffer(env, args...)
	if r.err != nil {
		t.Fatalf("coffer %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// mutate changes a source folder the way a working day does, drawn from
// rng: a new incompressible file of up to maxNew bytes, some files
// rewritten, one deleted, and a few small ones added. Each backup then has
// real work to do, so a kill can land anywhere in it.
func mutate(t *testing.T, rng *rand.Rand, dir string, maxNew int) {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	write := func(p string, n int) {
		b := make([]byte, n)
		for i := 0; i+8 <= len(b); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gen := rng.Uint32()
	write(filepath.Join(dir, fmt.Sprintf("scans/scan-%08x.bin", gen)), maxNew/2+rng.IntN(maxNew/2+1))
	for i := range 1 + rng.IntN(4) {
		write(filepath.Join(dir, fmt.Sprintf("notes/%08x-%d.txt", gen, i)), rng.IntN(32<<10))
	}
	if len(files) > 0 {
		for range 1 + rng.IntN(3) {
			write(files[rng.IntN(len(files))], rng.IntN(256<<10))
		}
		if len(files) > 4 {
			os.Remove(files[rng.IntN(len(files))])
		}
	}
}
