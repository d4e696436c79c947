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
	"slices"
	"strings"
	"time"
)

// Story runs the agent's CLI under wine: init, backup (while another
// process writes a file of the tree), points, ls, restore, a comparison of
// the restored tree from inside Windows, check --read-data and a
// passphrase change; then a point made on Linux with names Windows cannot
// hold is restored under wine; last, coffer run runs as a Windows service
// against a local vault and makes a scheduled backup (service.go).
type Story struct {
	W         *Wine
	CofferExe string // coffer built for Windows
	Wintree   string // emulator-tests/cmd/wintree built for Windows
	CofferLin string // coffer built for this machine, for the point made on Linux and the vault's admin commands
	Functions string // coffer-functions built for this machine: the service step's control plane
	Out       io.Writer
}

// Step is one step of the story and how it went.
type Step struct {
	Name    string
	Err     error
	Elapsed time.Duration
}

const (
	passphrase    = "the Windows lane's passphrase, 1"
	newPassphrase = "the Windows lane's passphrase, 2"
)

// Run runs every step in order and stops at the first failure, since each
// step builds on the one before. The returned steps are those that ran.
func (s *Story) Run(ctx context.Context) []Step {
	root := filepath.Join(s.W.Prefix, "drive_c", "coffer-lane")
	os.RemoveAll(root)
	st := &storyState{Story: s, root: root}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"make a tree with Windows specifics (wintree make)", st.makeTree},
		{"coffer init", st.init},
		{"coffer backup while another process writes open\\growing.log", st.backup},
		{"coffer points", st.points},
		{"coffer ls", st.ls},
		{"coffer restore", st.restore},
		{"compare the restore from inside Windows (wintree verify)", st.verify},
		{"coffer check --read-data", st.check},
		{"coffer passphrase change", st.passphraseChange},
		{"restore a point made on Linux with names Windows cannot hold", st.awkwardNames},
		{"coffer run as a service: a scheduled backup into a local vault, net stop", st.service},
	}
	var done []Step
	for _, step := range steps {
		start := time.Now()
		err := step.run(ctx)
		done = append(done, Step{Name: step.name, Err: err, Elapsed: time.Since(start)})
		status := "ok"
		if err != nil {
			status = "FAILED"
		}
		fmt.Fprintf(s.Out, "  %-68s %s (%s)\n", step.name, status, time.Since(start).Round(10*time.Millisecond))
		if err != nil {
			fmt.Fprintf(s.Out, "%s\n", indent(err.Error(), "      "))
			break
		}
	}
	return done
}

type storyState struct {
	*Story
	root  string // C:\coffer-lane, as a path of this machine
	point string
}

// win names a path below the story's root as the Windows programs see it.
func (st *storyState) win(rel string) string {
	return `C:\coffer-lane` + strings.TrimSuffix(`\`+strings.ReplaceAll(rel, "/", `\`), `\`)
}

// result is how one Windows program ended.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("%s exited %d\n  stdout: %s\n  stderr: %s", strings.Join(r.args, " "), r.code,
		indent(tail([]byte(r.stdout), 15), "    "), indent(tail([]byte(r.stderr), 15), "    "))
}

func (st *storyState) run(ctx context.Context, env []string, exe string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := st.W.Command(ctx, exe, args...)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{args: append([]string{filepath.Base(exe)}, args...), stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		return r, fmt.Errorf("run %s under wine: %w", strings.Join(r.args, " "), err)
	}
	return r, nil
}

// coffer runs coffer.exe with the passphrase and wants one of the exit
// codes.
func (st *storyState) coffer(ctx context.Context, pass string, want []int, args ...string) (result, error) {
	r, err := st.run(ctx, []string{"COFFER_PASSPHRASE=" + pass}, st.CofferExe, args...)
	if err != nil {
		return r, err
	}
	if !slices.Contains(want, r.code) {
		return r, fmt.Errorf("want exit code %v: %s", want, r)
	}
	return r, nil
}

func (st *storyState) makeTree(ctx context.Context) error {
	r, err := st.run(ctx, nil, st.Wintree, "make", st.win("src"))
	if err == nil && r.code != 0 {
		err = errors.New(r.String())
	}
	return err
}

func (st *storyState) init(ctx context.Context) error {
	_, err := st.coffer(ctx, passphrase, []int{0}, "init", "--repo", st.win("repo"))
	return err
}

// backup backs the tree up while `wintree write` appends to a file of it,
// sharing it for reading only, as a service writing its log does.
func (st *storyState) backup(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	writer := st.W.Command(ctx, st.Wintree, "write", st.win(`src\open\growing.log`))
	stdin, err := writer.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := writer.StdoutPipe()
	if err != nil {
		return err
	}
	var werr bytes.Buffer
	writer.Stderr = &werr
	if err := writer.Start(); err != nil {
		return fmt.Errorf("start wintree write: %w", err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stdin.Close()
		if err := writer.Wait(); err != nil {
			return fmt.Errorf("wintree write: %v: %s", err, werr.String())
		}
		return nil
	}
	defer stop()
	// Wait for its first line on disk.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "writing" {
		return fmt.Errorf("wintree write did not start writing (%q, %v): %s", line, err, werr.String())
	}
	// Exit code 3 is right only for a warning about the file being
	// written (read while it changed).
	r, err := st.coffer(ctx, passphrase, []int{0, 3}, "backup", "--repo", st.win("repo"), st.win("src"))
	if err != nil {
		return err
	}
	if r.code == 3 {
		for line := range strings.Lines(r.stderr) {
			if strings.HasPrefix(line, "warning") && !strings.Contains(line, "growing.log") {
				return fmt.Errorf("backup warned about a file nobody was writing: %s", r)
			}
		}
	}
	if err := stop(); err != nil {
		return err
	}
	// Wine has no Win32_ShadowCopy, so the backup, elevated under wine,
	// falls back to live files; say which way it went.
	switch {
	case strings.Contains(r.stderr, "reading from a shadow copy"):
		fmt.Fprintln(st.Out, "    read from a Volume Shadow Copy snapshot")
	case strings.Contains(r.stderr, "no shadow copy of this volume"):
		fmt.Fprintln(st.Out, "    no Volume Shadow Copy under wine: read live after one warning, as designed")
	}
	lines := strings.Fields(strings.TrimSpace(r.stdout))
	if len(lines) == 0 || len(lines[len(lines)-1]) != 64 {
		return fmt.Errorf("backup did not print the point's ID last: %s", r)
	}
	st.point = lines[len(lines)-1]
	return nil
}

func (st *storyState) points(ctx context.Context) error {
	r, err := st.coffer(ctx, passphrase, []int{0}, "points", "--repo", st.win("repo"), "--json")
	if err != nil {
		return err
	}
	var ps []struct {
		ID    string   `json:"id"`
		Paths []string `json:"paths"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil {
		return fmt.Errorf("points --json is not a JSON list of points: %v: %s", err, r)
	}
	if len(ps) != 1 || ps[0].ID != st.point || len(ps[0].Paths) != 1 || ps[0].Paths[0] != st.win("src") {
		return fmt.Errorf("want one point %s of %s, got %+v", st.point, st.win("src"), ps)
	}
	return nil
}

// ls lists the deepest folder, whose path is past MAX_PATH, by its path
// in the point.
func (st *storyState) ls(ctx context.Context) error {
	r, err := st.coffer(ctx, passphrase, []int{0}, "ls", "--repo", st.win("repo"), "latest")
	if err != nil {
		return err
	}
	for _, want := range []string{"/C/coffer-lane/src/unicode/Ελληνικά/😀 emoji.txt", "deep file past MAX_PATH.txt",
		"/C/coffer-lane/src/empty/empty folder", "/C/coffer-lane/src/open/growing.log"} {
		if !strings.Contains(r.stdout, want) {
			return fmt.Errorf("ls latest does not list %q:\n%s", want, indent(r.stdout, "    "))
		}
	}
	return nil
}

func (st *storyState) restore(ctx context.Context) error {
	r, err := st.coffer(ctx, passphrase, []int{0}, "restore", "--repo", st.win("repo"), st.point, "--target", st.win("restore"), "--json")
	if err != nil {
		return err
	}
	var rep restoreReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		return fmt.Errorf("restore --json: %v: %s", err, r)
	}
	if len(rep.Failed) > 0 || rep.Files != 12 {
		return fmt.Errorf("want 12 files restored and none failed: %s", r)
	}
	if err := unexpectedWarnings(rep.Warnings, nil); err != nil {
		return err
	}
	return nil
}

type restoreReport struct {
	Files    int `json:"files"`
	Failed   []pathReason
	Warnings []pathReason
	Copies   []string
	Renamed  []struct {
		Path string `json:"path"`
		As   string `json:"as"`
	} `json:"renamed"`
}

type pathReason struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// unexpectedWarnings fails on any restore warning but those allowed.
// Security descriptors are applied under wine too (the restore runs
// elevated there), so a warning about one is a failure.
func unexpectedWarnings(ws []pathReason, allowed func(pathReason) bool) error {
	var bad []string
	for _, w := range ws {
		if allowed == nil || !allowed(w) {
			bad = append(bad, w.Path+": "+w.Reason)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("unexpected restore warnings:\n%s", indent(strings.Join(bad, "\n"), "    "))
	}
	return nil
}

func (st *storyState) verify(ctx context.Context) error {
	r, err := st.run(ctx, nil, st.Wintree, "verify", st.win("src"), st.win(`restore\C\coffer-lane\src`))
	if err != nil {
		return err
	}
	if r.code != 0 {
		return fmt.Errorf("the restored tree differs from the source:\n%s%s", indent(r.stdout, "    "), indent(r.stderr, "    "))
	}
	return nil
}

func (st *storyState) check(ctx context.Context) error {
	r, err := st.coffer(ctx, passphrase, []int{0}, "check", "--repo", st.win("repo"), "--read-data")
	if err != nil {
		return err
	}
	if !strings.Contains(r.stdout, "No problems found") {
		return fmt.Errorf("check did not say it found no problems: %s", r)
	}
	return nil
}

// passphraseChange changes the passphrase, then the new one opens the
// repository and the old one no longer does.
func (st *storyState) passphraseChange(ctx context.Context) error {
	r, err := st.run(ctx, []string{"COFFER_PASSPHRASE=" + passphrase, "COFFER_NEW_PASSPHRASE=" + newPassphrase},
		st.CofferExe, "passphrase", "change", "--repo", st.win("repo"))
	if err != nil {
		return err
	}
	if r.code != 0 {
		return errors.New(r.String())
	}
	if _, err := st.coffer(ctx, newPassphrase, []int{0}, "points", "--repo", st.win("repo")); err != nil {
		return fmt.Errorf("the new passphrase does not open the repository: %w", err)
	}
	old, err := st.run(ctx, []string{"COFFER_PASSPHRASE=" + passphrase}, st.CofferExe, "points", "--repo", st.win("repo"))
	if err != nil {
		return err
	}
	if old.code == 0 || !strings.Contains(old.stderr, "wrong passphrase") {
		return fmt.Errorf("the old passphrase still opens the repository, or fails for another reason: %s", old)
	}
	return nil
}

func indent(s, prefix string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix) + "\n"
}
