package winlane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// TestPackage is a package with tests and its Windows test binary.
type TestPackage struct {
	ImportPath string
	Dir        string // the package's folder, the tests' working directory
	Binary     string // its Windows test binary, once built
}

// ListTestPackages returns the packages matching patterns that have tests
// when built for Windows.
func ListTestPackages(ctx context.Context, root string, patterns ...string) ([]TestPackage, error) {
	args := append([]string{"list", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}\t{{.Dir}}{{end}}"}, patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s for Windows: %w\n%s", strings.Join(patterns, " "), err, stderrOf(err))
	}
	var pkgs []TestPackage
	for line := range strings.Lines(string(out)) {
		path, dir, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok {
			pkgs = append(pkgs, TestPackage{ImportPath: path, Dir: dir})
		}
	}
	return pkgs, nil
}

// DeleteOverlay writes, below dir, a go build overlay for the test
// binaries only: Go 1.26 removes a file with
// NtSetInformationFile(FileDispositionInformationEx) and falls back to the
// older call on the statuses of Windows before 10 1607, but wine 8 answers
// STATUS_NOT_IMPLEMENTED, so every t.TempDir cleanup would fail after its
// test passed. The overlay adds that status to the fallback's list, in a
// copy of GOROOT's internal/syscall/windows/at_windows.go. It returns ""
// and why when this Go's file no longer has the line it extends; the lane
// then falls back to recognising the cleanup failure (cleanupGap).
func DeleteOverlay(ctx context.Context, dir string) (overlay, why string, err error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env GOROOT: %w", err)
	}
	orig := filepath.Join(strings.TrimSpace(string(out)), "src", "internal", "syscall", "windows", "at_windows.go")
	src, err := os.ReadFile(orig)
	if err != nil {
		return "", fmt.Sprintf("cannot read %s: %v", orig, err), nil
	}
	const anchor = "\t\tSTATUS_NOT_SUPPORTED:     // the file system doesn't support FILE_DISPOSITION_INFORMATION_EX or one of the flags\n"
	if !bytes.Contains(src, []byte(anchor)) {
		return "", "this Go's deleteat has changed: check whether it still fails under wine and update DeleteOverlay", nil
	}
	patched := bytes.Replace(src, []byte(anchor), []byte("\t\tSTATUS_NOT_SUPPORTED,\n\t\tNTStatus(0xC0000002): // STATUS_NOT_IMPLEMENTED, from wine 8 (the Windows lane's overlay)\n"), 1)
	odir := filepath.Join(dir, "overlay")
	if err := os.MkdirAll(odir, 0o755); err != nil {
		return "", "", err
	}
	file := filepath.Join(odir, "at_windows.go")
	if err := os.WriteFile(file, patched, 0o644); err != nil {
		return "", "", err
	}
	spec, err := json.Marshal(map[string]map[string]string{"Replace": {orig: file}})
	if err != nil {
		return "", "", err
	}
	overlay = filepath.Join(odir, "overlay.json")
	return overlay, "", os.WriteFile(overlay, spec, 0o644)
}

// BuildTests cross-compiles the packages' test binaries into dir in one go
// command, so packages are loaded and compiled once, with overlay (see
// DeleteOverlay) when it is not "". When that fails, each package is
// built on its own, so one package whose tests do not build for Windows
// is reported (broken: import path → compiler output) and the others
// still run. err is for what stops the lane.
func BuildTests(ctx context.Context, root, dir, overlay string, pkgs []TestPackage) (broken map[string]string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	seen := map[string]string{}
	var paths []string
	for i, p := range pkgs {
		base := filepath.Base(p.ImportPath)
		if other, dup := seen[base]; dup {
			return nil, fmt.Errorf("%s and %s would both build %s.test.exe; the lane names binaries by the last element of the path, so rename one or teach BuildTests about it", other, p.ImportPath, base)
		}
		seen[base] = p.ImportPath
		pkgs[i].Binary = filepath.Join(dir, base+".test.exe")
		paths = append(paths, p.ImportPath)
	}
	build := func(paths ...string) ([]byte, error) {
		args := []string{"test", "-c", "-o", dir + string(filepath.Separator)}
		if overlay != "" {
			args = append(args, "-overlay", overlay)
		}
		cmd := exec.CommandContext(ctx, "go", append(args, paths...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
		return cmd.CombinedOutput()
	}
	if _, err := build(paths...); err == nil {
		return nil, nil
	}
	broken = map[string]string{}
	for _, p := range paths {
		if out, err := build(p); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			broken[p] = tail(out, 20)
		}
	}
	if len(broken) == 0 {
		return nil, errors.New("the test binaries failed to build together but each built alone; run make test-windows again")
	}
	return broken, nil
}

// KnownGap is a test that fails under wine for a reason found and written
// down, and is skipped by the lane until it is dealt with. Every run
// prints them, so they stay in sight.
type KnownGap struct {
	Package string // import path
	Test    string // top-level test name
	Why     string
}

// cleanupGap matches the one error line wine 8 adds to many tests when
// the test binaries are built without DeleteOverlay: Go 1.26 removes files
// with NtSetInformationFile(FileDispositionInformationEx), which wine 8
// answers with STATUS_NOT_IMPLEMENTED ("Invalid function."), so
// t.TempDir's cleanup fails after the test itself has passed. Real
// Windows 10 1607 and later implement it.
var cleanupGap = regexp.MustCompile(`^\s+testing\.go:\d+: TempDir RemoveAll cleanup: unlinkat .*: Invalid function\.\s*$`)

// TestOutcome is what one test did under wine.
type TestOutcome struct {
	Name   string
	Action string // pass, fail, skip, or "cleanup-gap" for a test whose only failure is cleanupGap
	Output []string
}

// PackageRun is the outcome of one test binary under wine.
type PackageRun struct {
	Package  string
	Passed   int
	Skipped  int
	Excused  []string      // tests whose only failure is wine's cleanup gap
	Failed   []TestOutcome // real failures, with their output
	Crash    string        // the binary failed outside any test (build, panic, timeout)
	Elapsed  time.Duration
	FullLogs string // where the whole output is kept
}

// OK reports whether the package passed under wine.
func (r *PackageRun) OK() bool { return len(r.Failed) == 0 && r.Crash == "" }

// RunTests runs each package's test binary under wine in its package's
// folder, parallel at a time, with -test.short (tests that need an
// emulator skip) and the known gaps skipped.
func (w *Wine) RunTests(ctx context.Context, pkgs []TestPackage, gaps []KnownGap, parallel int, timeout time.Duration) []*PackageRun {
	runs := make([]*PackageRun, len(pkgs))
	sem := make(chan struct{}, max(1, parallel))
	var wg sync.WaitGroup
	for i, p := range pkgs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			runs[i] = w.runTest(ctx, p, gaps, timeout)
		})
	}
	wg.Wait()
	return runs
}

func (w *Wine) runTest(ctx context.Context, p TestPackage, gaps []KnownGap, timeout time.Duration) *PackageRun {
	run := &PackageRun{Package: p.ImportPath}
	var skip []string
	for _, g := range gaps {
		if g.Package == p.ImportPath {
			skip = append(skip, regexp.QuoteMeta(g.Test))
		}
	}
	args := []string{"tool", "test2json", "-t", "-p", p.ImportPath, w.loader, p.Binary,
		"-test.v=test2json", "-test.short", "-test.count=1", "-test.timeout=" + timeout.String()}
	if len(skip) > 0 {
		args = append(args, "-test.skip=^("+strings.Join(skip, "|")+")$")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = p.Dir
	cmd.Env = w.Env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	logDir := filepath.Join(w.Dir, "logs")
	os.MkdirAll(logDir, 0o755)
	run.FullLogs = filepath.Join(logDir, strings.ReplaceAll(p.ImportPath, "/", "_")+".json")
	logFile, err := os.Create(run.FullLogs)
	if err != nil {
		run.Crash = err.Error()
		return run
	}
	defer logFile.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		run.Crash = err.Error()
		return run
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		run.Crash = fmt.Sprintf("start go tool test2json: %v", err)
		return run
	}
	summarize(io.TeeReader(stdout, logFile), run)
	err = cmd.Wait()
	run.Elapsed = time.Since(start)
	if err != nil && run.OK() && len(run.Excused) == 0 {
		// The binary failed without a failing test: a panic, a timeout, or
		// wine itself.
		run.Crash = fmt.Sprintf("%v; %s", err, strings.TrimSpace(tail(stderr.Bytes(), 15)))
		if ctx.Err() != nil {
			run.Crash = fmt.Sprintf("did not finish within %v: %s", timeout, run.Crash)
		}
	}
	return run
}

// event is one line of go tool test2json.
type event struct {
	Action string
	Test   string
	Output string
}

// summarize reads test2json events into run, deciding which failures are
// only wine's cleanup gap: a failed test is excused when every line it
// printed is test framing or cleanupGap, and each failed subtest is
// excused too.
func summarize(r io.Reader, run *PackageRun) {
	output := map[string][]string{}
	var failed []string
	var pkgOutput []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			pkgOutput = append(pkgOutput, sc.Text())
			continue
		}
		switch e.Action {
		case "output":
			if e.Test == "" {
				pkgOutput = append(pkgOutput, strings.TrimRight(e.Output, "\n"))
			} else {
				output[e.Test] = append(output[e.Test], strings.TrimRight(e.Output, "\n"))
			}
		case "pass":
			if e.Test != "" && !strings.Contains(e.Test, "/") {
				run.Passed++
			}
		case "skip":
			if e.Test != "" && !strings.Contains(e.Test, "/") {
				run.Skipped++
			}
		case "fail":
			if e.Test != "" {
				failed = append(failed, e.Test)
			} else if len(failed) == 0 {
				run.Crash = strings.TrimSpace(strings.Join(lastLines(pkgOutput, 15), "\n"))
			}
		}
	}
	excused := map[string]bool{}
	// Deepest first, so a parent sees its subtests' verdicts.
	slices.SortFunc(failed, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, name := range failed {
		ok := true
		for _, line := range output[name] {
			if !framing(line) && !cleanupGap.MatchString(line) {
				ok = false
				break
			}
		}
		for _, other := range failed {
			if strings.HasPrefix(other, name+"/") && !excused[other] {
				ok = false
			}
		}
		excused[name] = ok
	}
	for _, name := range failed {
		if strings.Contains(name, "/") {
			continue
		}
		if excused[name] {
			run.Excused = append(run.Excused, name)
			run.Passed++
			continue
		}
		var out []string
		for _, other := range failed {
			if other == name || strings.HasPrefix(other, name+"/") {
				out = append(out, output[other]...)
			}
		}
		run.Failed = append(run.Failed, TestOutcome{Name: name, Action: "fail", Output: out})
	}
	slices.Sort(run.Excused)
	slices.SortFunc(run.Failed, func(a, b TestOutcome) int { return strings.Compare(a.Name, b.Name) })
}

// framing reports whether a line is the test runner's own, not a test's.
func framing(line string) bool {
	t := strings.TrimSpace(line)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- FAIL", "--- PASS", "--- SKIP"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return t == ""
}

func lastLines(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return tail(ee.Stderr, 20)
	}
	return ""
}
