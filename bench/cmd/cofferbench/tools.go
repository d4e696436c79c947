//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/bench/measure"
)

// passphrase is long enough for every tool (Coffer wants at least 16
// characters); it protects nothing but throwaway benchmark repositories.
const passphrase = "cofferbench-throwaway-passphrase"

// tool knows how to drive one backup program. Commands are built per
// repository so the same tool can run against a folder or a URL.
type tool struct {
	name    string // column heading: "coffer", "restic", "borg"
	bin     string
	version string
	flags   string // the settings used, for the report
	env     func(cache string) []string
	init    func(repo, cache string) []string
	backup  func(repo, src, cache string, n int) []string
	restore func(repo, cache string, n int) []string
	// dump writes one file (its absolute source path) of the latest backup
	// to stdout; nil means the tool cannot, and the row says "not run".
	dump func(repo, cache string, n int, path string) []string
	// warnExit is the exit code that means "done, with warnings" (borg 1,
	// coffer 3): the backup is complete, so its figures stand and the log
	// says what the warning was. Zero means the tool has none.
	warnExit int
	// restoreInCwd: the tool extracts into its working directory (borg)
	// rather than into a --target.
	restoreInCwd bool
}

func resticTool(bin, version string) *tool {
	return &tool{
		name: "restic", bin: bin, version: version,
		flags: "defaults (`restic backup --repo R DIR`; repository v2, compression auto = zstd)",
		env: func(cache string) []string {
			return []string{"RESTIC_PASSWORD=" + passphrase, "RESTIC_CACHE_DIR=" + cache}
		},
		init:   func(repo, _ string) []string { return []string{"init", "--repo", repo} },
		backup: func(repo, src, _ string, _ int) []string { return []string{"backup", "--repo", repo, src} },
		restore: func(repo, _ string, _ int) []string {
			return []string{"restore", "latest", "--repo", repo, "--target", "{target}"}
		},
		// restic 0.14: `restic dump [flags] snapshotID file`, the file by
		// the absolute path it was backed up from.
		dump: func(repo, _ string, _ int, path string) []string {
			return []string{"dump", "--repo", repo, "latest", path}
		},
	}
}

func borgTool(bin, version string) *tool {
	return &tool{
		name: "borg", bin: bin, version: version,
		flags: "`borg init --encryption=repokey-blake2`, `borg create --compression zstd,3` (default chunker)",
		env: func(cache string) []string {
			// BORG_BASE_DIR keeps borg's cache, keys and security records in
			// the run's folder, not in the user's home.
			return []string{"BORG_PASSPHRASE=" + passphrase, "BORG_BASE_DIR=" + cache,
				"BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes", "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes"}
		},
		init: func(repo, _ string) []string { return []string{"init", "--encryption=repokey-blake2", repo} },
		backup: func(repo, src, _ string, n int) []string {
			return []string{"create", "--compression", "zstd,3", fmt.Sprintf("%s::a%d", repo, n), src}
		},
		restore: func(repo, _ string, n int) []string { return []string{"extract", fmt.Sprintf("%s::a%d", repo, n)} },
		// borg stores paths without their leading slash.
		dump: func(repo, _ string, n int, path string) []string {
			return []string{"extract", "--stdout", fmt.Sprintf("%s::a%d", repo, n), strings.TrimPrefix(path, "/")}
		},
		restoreInCwd: true,
		warnExit:     1,
	}
}

func cofferTool(bin, version string) *tool {
	return &tool{
		name: "coffer", bin: bin, version: version,
		flags: "defaults (`coffer backup --repo R DIR --cache-dir C`)",
		env:   func(string) []string { return []string{"COFFER_PASSPHRASE=" + passphrase} },
		// Every command gets the run's cache folder, so nothing lands in
		// the user's cache and restore sees what backup cached, as
		// restic's and borg's do.
		init: func(repo, cache string) []string { return []string{"init", "--repo", repo, "--cache-dir", cache} },
		backup: func(repo, src, cache string, _ int) []string {
			return []string{"backup", "--repo", repo, src, "--cache-dir", cache}
		},
		restore: func(repo, cache string, _ int) []string {
			return []string{"restore", "--repo", repo, "latest", "--target", "{target}", "--cache-dir", cache}
		},
		// Points hold the absolute path that was backed up, as restic's do.
		dump: func(repo, cache string, _ int, path string) []string {
			return []string{"dump", "--repo", repo, "latest", path, "--cache-dir", cache}
		},
		warnExit: 3,
	}
}

// findTools returns the tools asked for that can run, and a note for each
// that cannot.
func findTools(ctx context.Context, names []string, workDir, cofferBin string) (tools []*tool, notes []string) {
	for _, n := range names {
		switch n {
		case "restic":
			bin, err := exec.LookPath("restic")
			if err != nil {
				notes = append(notes, "restic skipped: not installed (`apt-get install restic`)")
				continue
			}
			tools = append(tools, resticTool(bin, versionOf(ctx, bin, "version")))
		case "borg":
			bin, err := exec.LookPath("borg")
			if err != nil {
				notes = append(notes, "borg skipped: not installed (`apt-get install borgbackup`)")
				continue
			}
			tools = append(tools, borgTool(bin, versionOf(ctx, bin, "--version")))
		case "coffer":
			bin, err := buildCoffer(ctx, workDir, cofferBin)
			if err != nil {
				notes = append(notes, "coffer skipped: "+err.Error())
				continue
			}
			tools = append(tools, cofferTool(bin, versionOf(ctx, bin, "version")))
		default:
			notes = append(notes, fmt.Sprintf("unknown tool %q ignored (known: coffer, restic, borg)", n))
		}
	}
	return tools, notes
}

func versionOf(ctx context.Context, bin string, args ...string) string {
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return "unknown version"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// buildCoffer builds the agent from the working tree, so the benchmark
// measures the code being changed (unless given a prebuilt binary), and
// checks it has the commands the benchmark drives: the CLI is being written
// and may not have them yet.
func buildCoffer(ctx context.Context, workDir, prebuilt string) (string, error) {
	bin := prebuilt
	if bin == "" {
		bin = filepath.Join(workDir, "bin", "coffer")
		// Without symbol tables and debug information, as `make build`
		// builds it: every timed command starts with its binary read from
		// a cold disk, and that is 4 MB less.
		cmd := exec.CommandContext(ctx, "go", "build", "-ldflags=-s -w", "-o", bin, "./agent/cmd/coffer")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./agent/cmd/coffer failed (run from the repository root): %w: %s", err, strings.TrimSpace(string(out)))
		}
	} else if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("-coffer-bin: %w", err)
	}
	var missing []string
	for _, sub := range []string{"init", "backup", "restore"} {
		c := exec.CommandContext(ctx, bin, sub, "--help")
		out, err := c.CombinedOutput()
		// cobra answers an unknown command's --help with the root's help
		// and exit 0 in some versions, so look for the command's own usage.
		if err != nil || !strings.Contains(string(out), "coffer "+sub) {
			missing = append(missing, sub)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("the coffer CLI built from ./agent/cmd/coffer has no %s command yet", strings.Join(missing, "/"))
	}
	return bin, nil
}

// command turns a tool's argument list into a measured command; {target}
// stands for the restore folder.
func (t *tool) command(args []string, env []string, target string, log *os.File) measure.Cmd {
	c := measure.Cmd{Path: t.bin, Env: env, Log: log}
	for _, a := range args {
		c.Args = append(c.Args, strings.ReplaceAll(a, "{target}", target))
	}
	if t.restoreInCwd {
		c.Dir = target
	}
	return c
}

// commandTimeout bounds one command so a hung tool cannot hold the run
// forever; the largest full-scale step takes a few minutes.
const commandTimeout = 2 * time.Hour
