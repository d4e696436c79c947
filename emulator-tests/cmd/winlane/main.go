// Command winlane is the Windows lane (make test-windows): it runs the
// Windows test binaries of agent/... and shared/... and the agent's CLI
// story under wine, installing wine and mingw-w64 when missing. See
// emulator-tests/winlane and docs/windows.md.
//
//	go run ./emulator-tests/cmd/winlane [-dir .build/wine] [-only tests|story] [-packages ./agent/restorer,...] [-with-gaps]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/winlane"
)

func main() {
	dir := flag.String("dir", ".build/wine", "build folder: wine prefix, binaries, logs")
	only := flag.String("only", "", "run only the Go tests (tests) or only the CLI story (story)")
	parallel := flag.Int("parallel", 4, "test binaries run at once (wine start-up waits more than it computes)")
	timeout := flag.Duration("timeout", 3*time.Minute, "time allowed to each test binary")
	withGaps := flag.Bool("with-gaps", false, "run the known gaps too, to see which are still real")
	packages := flag.String("packages", "./agent/...,./shared/...", "comma-separated package patterns whose tests run under wine")
	flag.Parse()
	if *only != "" && *only != "tests" && *only != "story" {
		fmt.Fprintln(os.Stderr, "winlane: -only takes tests or story")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gaps := winlane.KnownGaps
	if *withGaps {
		gaps = nil
	}
	ok, err := run(ctx, log, *dir, *only, strings.Split(*packages, ","), gaps, *parallel, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "winlane:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, dir, only string, patterns []string, gaps []winlane.KnownGap, parallel int, timeout time.Duration) (bool, error) {
	start := time.Now()
	root, err := moduleRoot(ctx)
	if err != nil {
		return false, err
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	w, err := winlane.Prepare(ctx, dir, log)
	if err != nil {
		return false, err
	}
	// Every Windows process of the lane runs in its own prefix: ending
	// that prefix's wineserver ends them all, and nothing else.
	defer w.Stop()

	ok := true
	if only != "story" {
		fmt.Printf("Windows lane: Go tests of %s under wine (-test.short)\n", strings.Join(patterns, " "))
		pkgs, err := winlane.ListTestPackages(ctx, root, patterns...)
		if err != nil {
			return false, err
		}
		overlay, why, err := winlane.DeleteOverlay(ctx, dir)
		if err != nil {
			return false, err
		}
		if overlay == "" {
			fmt.Printf("  no delete overlay (%s): t.TempDir cleanups will fail under wine and be recognised\n", why)
		}
		t := time.Now()
		broken, err := winlane.BuildTests(ctx, root, filepath.Join(dir, "tests"), overlay, pkgs)
		if err != nil {
			return false, err
		}
		if len(broken) > 0 {
			ok = false
			fmt.Printf("  %d packages' tests do not build for Windows; the others run:\n", len(broken))
			var runnable []winlane.TestPackage
			for _, p := range pkgs {
				if out, bad := broken[p.ImportPath]; bad {
					fmt.Printf("  FAIL %s (build)\n%s", strings.TrimPrefix(p.ImportPath, "github.com/coffer-backup/coffer/"), indent(out))
					continue
				}
				runnable = append(runnable, p)
			}
			pkgs = runnable
		}
		fmt.Printf("  built %d test binaries for windows/amd64 in %s", len(pkgs), time.Since(t).Round(time.Second))
		if overlay != "" {
			fmt.Printf(", deleting files as on Windows before 10 1607 where wine lacks the newer call (%s)", overlay)
		}
		fmt.Println()
		runs := w.RunTests(ctx, pkgs, gaps, parallel, timeout)
		if !report(runs) {
			ok = false
		}
	}
	if only != "tests" && ctx.Err() == nil {
		fmt.Println("Windows lane: the coffer CLI under wine")
		bin := filepath.Join(dir, "bin")
		s := &winlane.Story{W: w, Out: os.Stdout,
			CofferExe: filepath.Join(bin, "coffer.exe"), Wintree: filepath.Join(bin, "wintree.exe"), CofferLin: filepath.Join(bin, "coffer"),
			Functions: filepath.Join(bin, "coffer-functions")}
		for _, b := range []struct{ goos, out, pkg string }{
			{"windows", s.CofferExe, "./agent/cmd/coffer"},
			{"windows", s.Wintree, "./emulator-tests/cmd/wintree"},
			{"linux", s.CofferLin, "./agent/cmd/coffer"},
			{"linux", s.Functions, "./functions/cmd/coffer-functions"},
		} {
			if err := build(ctx, root, b.goos, b.out, b.pkg); err != nil {
				return false, err
			}
		}
		for _, st := range s.Run(ctx) {
			if st.Err != nil {
				ok = false
			}
		}
	}
	if ctx.Err() != nil {
		return false, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if len(gaps) > 0 && only != "story" {
		fmt.Printf("Known Windows gaps, skipped until fixed (emulator-tests/winlane/gaps.go, docs/windows.md; -with-gaps runs them):\n")
		for _, g := range gaps {
			fmt.Printf("  %s %s: %s\n", strings.TrimPrefix(g.Package, "github.com/coffer-backup/coffer/"), g.Test, g.Why)
		}
	}
	verdict := "passed"
	if !ok {
		verdict = "FAILED"
	}
	fmt.Printf("Windows lane %s in %s (logs in %s)\n", verdict, time.Since(start).Round(time.Second), filepath.Join(dir, "logs"))
	return ok, nil
}

// report prints one line per package and the output of each failed test.
func report(runs []*winlane.PackageRun) bool {
	ok := true
	excused := 0
	for _, r := range runs {
		name := strings.TrimPrefix(r.Package, "github.com/coffer-backup/coffer/")
		status := "ok  "
		if !r.OK() {
			status, ok = "FAIL", false
		}
		extra := ""
		if len(r.Excused) > 0 {
			extra = fmt.Sprintf(", %d only hit wine's TempDir cleanup gap", len(r.Excused))
			excused += len(r.Excused)
		}
		fmt.Printf("  %s %-44s %3d passed, %2d skipped%s (%s)\n", status, name, r.Passed, r.Skipped, extra, r.Elapsed.Round(100*time.Millisecond))
		if r.Crash != "" {
			fmt.Printf("      the test binary failed outside any test: %s\n      full output: %s\n", strings.ReplaceAll(r.Crash, "\n", "\n      "), r.FullLogs)
		}
		for _, f := range r.Failed {
			fmt.Printf("      --- FAIL: %s\n", f.Name)
			lines := f.Output
			if len(lines) > 16 {
				lines = append([]string{fmt.Sprintf("… %d lines, all in %s", len(lines), r.FullLogs)}, lines[len(lines)-16:]...)
			}
			for _, l := range lines {
				if l = strings.TrimSpace(l); l != "" {
					if len(l) > 300 {
						l = l[:300] + "…"
					}
					fmt.Printf("        %s\n", l)
				}
			}
		}
	}
	if excused > 0 {
		fmt.Printf("  %d tests passed but wine 8 could not remove their t.TempDir (Go 1.26 deletes with FileDispositionInformationEx, which wine 8 lacks); counted as passed\n", excused)
	}
	return ok
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "      " + strings.ReplaceAll(s, "\n", "\n      ") + "\n"
}

func build(ctx context.Context, root, goos, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s for %s: %w\n%s", pkg, goos, err, b)
	}
	return nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run winlane inside the Coffer module")
	}
	return filepath.Dir(mod), nil
}
