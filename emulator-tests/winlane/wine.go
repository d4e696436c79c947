// Package winlane runs Coffer's Windows build under wine: the Windows test
// binaries of the agent and shared packages, and the agent's CLI on a tree
// with Windows specifics (make test-windows, emulator-tests/cmd/winlane).
//
// Debian's wine 8 runs a Go Windows build once the prefix's system32 holds
// a bcryptprimitives.dll exporting ProcessPrng, which Go 1.22 and later
// load at start-up and wine 8 lacks; Prepare builds that DLL from
// stub/bcryptprimitives.c with mingw-w64. The prefix is private to the build
// folder, so the lane never touches a user's ~/.wine, and stopping its
// wineserver stops only the lane's own Windows processes.
package winlane

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed stub/bcryptprimitives.c
var stubSource []byte

// Debian packages the lane needs, installed when missing.
var aptPackages = []string{"wine", "wine64", "gcc-mingw-w64-x86-64"}

const mingwGCC = "x86_64-w64-mingw32-gcc"

// Wine runs Windows programs in the lane's private prefix.
type Wine struct {
	Dir    string // the lane's build folder
	Prefix string // WINEPREFIX, below Dir
	loader string // the wine program
	log    *slog.Logger
}

// Available reports whether wine and mingw-w64 are installed, without
// installing them, and what is missing.
func Available() (bool, string) {
	var missing []string
	if findLoader() == "" {
		missing = append(missing, "wine")
	}
	if _, err := exec.LookPath(mingwGCC); err != nil {
		missing = append(missing, mingwGCC)
	}
	return len(missing) == 0, strings.Join(missing, ", ")
}

// findLoader returns the wine program able to run 64-bit Windows programs.
func findLoader() string {
	for _, name := range []string{"wine64", "wine"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, p := range []string{"/usr/lib/wine/wine64", "/usr/lib/wine/wine"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Prepare installs wine and mingw-w64 when missing (as root, with apt-get),
// builds the ProcessPrng DLL and makes the wine prefix below dir, reusing
// one made before with the same DLL.
func Prepare(ctx context.Context, dir string, log *slog.Logger) (*Wine, error) {
	if ok, missing := Available(); !ok {
		if err := install(ctx, missing, log); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	w := &Wine{Dir: dir, Prefix: filepath.Join(dir, "prefix"), loader: findLoader(), log: log}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the lane's build folder: %w", err)
	}
	dll, err := w.buildStub(ctx)
	if err != nil {
		return nil, err
	}
	if err := w.makePrefix(ctx, dll); err != nil {
		return nil, err
	}
	return w, nil
}

func install(ctx context.Context, missing string, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s not installed and not running as root: install them with 'sudo apt-get install -y %s', then run make test-windows again",
			missing, strings.Join(aptPackages, " "))
	}
	log.Info("installing what the Windows lane needs", "missing", missing, "packages", aptPackages)
	if out, err := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %w\n%s", err, tail(out, 20))
	}
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, aptPackages...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %w\n%s", strings.Join(aptPackages, " "), err, tail(out, 20))
	}
	if ok, still := Available(); !ok {
		return fmt.Errorf("after apt-get install, still missing: %s", still)
	}
	return nil
}

// buildStub compiles bcryptprimitives.c into the build folder, unless the
// DLL there was built from the same source.
func (w *Wine) buildStub(ctx context.Context) (string, error) {
	src := filepath.Join(w.Dir, "bcryptprimitives.c")
	dll := filepath.Join(w.Dir, "bcryptprimitives.dll")
	if old, err := os.ReadFile(src); err == nil && bytes.Equal(old, stubSource) && exists(dll) {
		return dll, nil
	}
	if err := os.WriteFile(src, stubSource, 0o644); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, mingwGCC, "-shared", "-O2", "-s", "-o", dll, src, "-ladvapi32").CombinedOutput()
	if err != nil {
		os.Remove(dll)
		return "", fmt.Errorf("build the ProcessPrng DLL with %s: %w\n%s", mingwGCC, err, tail(out, 20))
	}
	return dll, nil
}

// makePrefix creates the wine prefix once and puts the DLL in its
// system32, where Go's runtime loads it from.
func (w *Wine) makePrefix(ctx context.Context, dll string) error {
	ready := filepath.Join(w.Prefix, ".coffer-ready")
	sys32 := filepath.Join(w.Prefix, "drive_c", "windows", "system32")
	if !exists(ready) {
		os.RemoveAll(w.Prefix)
		w.log.Info("creating the wine prefix (once per build folder)", "prefix", w.Prefix)
		start := time.Now()
		cmd := w.Command(ctx, "wineboot", "--init")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("wineboot --init in %s: %w\n%s", w.Prefix, err, tail(out, 20))
		}
		if err := w.waitServer(ctx); err != nil {
			return err
		}
		if !exists(sys32) {
			return fmt.Errorf("wineboot made no %s: the prefix is incomplete; remove %s and run again", sys32, w.Prefix)
		}
		w.log.Info("wine prefix ready", "took", time.Since(start).Round(time.Second))
	}
	b, err := os.ReadFile(dll)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sys32, "bcryptprimitives.dll"), b, 0o644); err != nil {
		return fmt.Errorf("install the ProcessPrng DLL into the prefix: %w", err)
	}
	return os.WriteFile(ready, nil, 0o644)
}

// Env is the environment every Windows program of the lane runs with.
func (w *Wine) Env(extra ...string) []string {
	env := make([]string, 0, len(os.Environ())+8)
	for _, kv := range os.Environ() {
		// Go settings meant for the host's go command would confuse the
		// Windows programs (GOOS=windows in particular).
		if k, _, _ := strings.Cut(kv, "="); k == "GOOS" || k == "GOARCH" || k == "GOFLAGS" || k == "DISPLAY" || k == "WAYLAND_DISPLAY" {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env,
		"WINEPREFIX="+w.Prefix,
		"WINEDEBUG=-all",
		// No Mono or Gecko: nothing here needs them, and wineboot would
		// otherwise offer to download them.
		"WINEDLLOVERRIDES=mscoree,mshtml=",
	), extra...)
}

// Command runs a Windows program (a path on this machine, or a program in
// the prefix such as wineboot) under wine.
func (w *Wine) Command(ctx context.Context, exe string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, w.loader, append([]string{exe}, args...)...)
	cmd.Env = w.Env()
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// waitServer waits until the prefix's wineserver has exited, that is
// until every Windows process the lane started has ended.
func (w *Wine) waitServer(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, w.server(), "-w")
	cmd.Env = w.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("wineserver -w: %w\n%s", err, tail(out, 10))
	}
	return nil
}

// Stop ends every process still running in the lane's prefix, and only
// those: the prefix is the lane's own.
func (w *Wine) Stop() error {
	cmd := exec.Command(w.server(), "-k")
	cmd.Env = w.Env()
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // no server was running
	}
	return err
}

func (w *Wine) server() string {
	for _, name := range []string{"wineserver", "wineserver64"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, p := range []string{"/usr/lib/wine/wineserver64", "/usr/lib/wine/wineserver"} {
		if exists(p) {
			return p
		}
	}
	return "wineserver"
}

// WinPath is how a Windows program under wine names a path of this
// machine: drive Z: maps to /.
func WinPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		abs = p
	}
	return `Z:` + strings.ReplaceAll(abs, "/", `\`)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// tail returns the last n lines of out, for error messages that stay
// readable.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
