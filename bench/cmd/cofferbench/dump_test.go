//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/bench/dataset"
	"github.com/coffer-backup/coffer/bench/measure"
)

func TestPickOneFileTakesTheFileClosestTo1MiB(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]int
		want  string
	}{
		{"closest wins", map[string]int{"a": 100, "b/c": oneFileSize - 10, "d": oneFileSize + 20}, "b/c"},
		{"larger when closer", map[string]int{"a": oneFileSize / 2, "z/big": oneFileSize + 1}, "z/big"},
		{"tie goes to the first path", map[string]int{"y": oneFileSize - 5, "x/q": oneFileSize + 5}, "x/q"},
		{"far from 1 MiB still picks the closest", map[string]int{"small": 10, "smaller": 3}, "small"},
		{"empty files never", map[string]int{"empty": 0, "tiny": 1}, "tiny"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for p, size := range c.files {
				full := filepath.Join(root, filepath.FromSlash(p))
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, bytes.Repeat([]byte{'x'}, size), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, err := pickOneFile(root, oneFileSize)
			if err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(bytes.Repeat([]byte{'x'}, c.files[c.want]))
			if f.rel != c.want || f.size != int64(c.files[c.want]) || f.sum != want {
				t.Errorf("picked %s (%d bytes), want %s (%d bytes) with its SHA-256", f.rel, f.size, c.want, c.files[c.want])
			}
		})
	}
	if _, err := pickOneFile(t.TempDir(), oneFileSize); err == nil {
		t.Error("a tree with no non-empty file gave a pick")
	}
}

func TestPickOneFileIsTheSameOnEveryGeneration(t *testing.T) {
	var got []oneFile
	for range 2 {
		root := filepath.Join(t.TempDir(), "d")
		if _, err := dataset.Generate(root, dataset.Source, 1, 0.002); err != nil {
			t.Fatal(err)
		}
		f, err := pickOneFile(root, oneFileSize)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if got[0] != got[1] {
		t.Errorf("two generations of the same dataset picked %+v and %+v", got[0], got[1])
	}
}

// TestRunDumpTimesAndChecksThePipe stands a shell's cat in for a tool's
// dump command, so it needs neither restic nor coffer.
func TestRunDumpTimesAndChecksThePipe(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	root := t.TempDir()
	content := bytes.Repeat([]byte("coffer"), 200_000)
	if err := os.WriteFile(filepath.Join(root, "f"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := pickOneFile(root, oneFileSize)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	d, err := runDump(context.Background(), sh, []string{"-c", "cat " + filepath.Join(root, "f")}, nil, &log, f)
	if err != nil {
		t.Fatal(err)
	}
	if d.verify != "ok" || d.bytes != int64(len(content)) || d.firstByte <= 0 || d.total < d.firstByte {
		t.Errorf("dump of the file: %+v", d)
	}
	if !strings.Contains(log.String(), "first byte") {
		t.Errorf("log lacks the timing line:\n%s", log.String())
	}

	d, err = runDump(context.Background(), sh, []string{"-c", "printf short"}, nil, &log, f)
	if err != nil || !strings.HasPrefix(d.verify, "MISMATCH") {
		t.Errorf("a short dump was not flagged: %+v, %v", d, err)
	}
	if _, err := runDump(context.Background(), sh, []string{"-c", "exit 1"}, nil, &log, f); err == nil {
		t.Error("a failing dump command was not an error")
	}

	// A launcher slow to start (a cold binary) is not charged to the
	// command's first byte or total.
	const delay = 2 * time.Second
	t.Setenv(measure.LaunchDelayEnv, delay.String())
	start := time.Now()
	d, err = runDump(context.Background(), sh, []string{"-c", "cat " + filepath.Join(root, "f")}, nil, &log, f)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < delay {
		t.Fatalf("the launcher did not wait %v before starting the command; the test proves nothing", delay)
	}
	if d.firstByte <= 0 || d.firstByte >= delay || d.total >= delay || d.total < d.firstByte {
		t.Errorf("dump behind a launcher slow to start: first byte %v, total %v; want both under the launcher's %v start", d.firstByte, d.total, delay)
	}
}

// TestResticDumpSyntax checks the command line against restic itself when
// it is installed: back up a file, dump it through runDump.
func TestResticDumpSyntax(t *testing.T) {
	bin, err := exec.LookPath("restic")
	if err != nil {
		t.Skip("restic not installed")
	}
	if testing.Short() {
		t.Skip("runs restic")
	}
	base := t.TempDir()
	src, repo, cache := filepath.Join(base, "src"), filepath.Join(base, "repo"), filepath.Join(base, "cache")
	if err := os.MkdirAll(filepath.Join(src, "a b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a b", "f.txt"), bytes.Repeat([]byte("restic "), 150_000), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := resticTool(bin, "")
	var log bytes.Buffer
	for _, args := range [][]string{rt.init(repo, cache), rt.backup(repo, src, cache, 1)} {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), rt.env(cache)...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("restic %s: %v: %s", args[0], err, out)
		}
	}
	f, err := pickOneFile(src, oneFileSize)
	if err != nil {
		t.Fatal(err)
	}
	d, err := runDump(context.Background(), bin, rt.dump(repo, cache, 1, filepath.Join(src, f.rel)), rt.env(cache), &log, f)
	if err != nil || d.verify != "ok" {
		t.Fatalf("restic dump: %+v, %v\n%s", d, err, log.String())
	}
}
