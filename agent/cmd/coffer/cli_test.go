//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

var bin string

// runMain makes the test binary run coffer's main instead of the tests.
const runMain = "COFFER_CLI_TEST_RUN_MAIN"

// TestMain runs the tests against this test binary acting as coffer: no
// second build, so the package's tests stay fast in make unit. The binary
// is copied to a folder every user may read, for the runs as nobody.
func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main()
		return
	}
	dir, _ := os.MkdirTemp("", "coffer-cli-")
	os.Chmod(dir, 0o755)
	bin = filepath.Join(dir, "coffer")
	if err := copyExecutable(bin); err != nil {
		fmt.Fprintln(os.Stderr, "copy the test binary to act as coffer:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func copyExecutable(to string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

const pass = "a passphrase of sixteen+ characters"

type run struct {
	out, err string
	code     int
}

func coffer(t *testing.T, env []string, args ...string) run {
	t.Helper()
	return cofferAs(t, nil, env, args...)
}

func cofferAs(t *testing.T, cred *syscall.Credential, env []string, args ...string) run {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), runMain+"=1", "COFFER_PASSPHRASE="+pass), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return run{o.String(), e.String(), code}
}

// sharedTemp is a temp folder every user may write, for runs as nobody.
func sharedTemp(t *testing.T) string {
	d := t.TempDir()
	os.Chmod(filepath.Dir(d), 0o755) // the test's own temp root is private
	os.Chmod(d, 0o777)
	return d
}

func setup(t *testing.T) (repo, src, cache string) {
	base := sharedTemp(t)
	repo, src, cache = filepath.Join(base, "repo"), filepath.Join(base, "src"), filepath.Join(base, "cache")
	os.MkdirAll(filepath.Join(src, "docs"), 0o777)
	os.WriteFile(filepath.Join(src, "docs", "report.txt"), []byte("quarterly report\n"), 0o644)
	os.WriteFile(filepath.Join(src, "notes.md"), []byte("# notes\n"), 0o644)
	if r := coffer(t, nil, "init", "--repo", repo); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	filepath.Walk(filepath.Dir(repo), func(p string, _ os.FileInfo, _ error) error { os.Chmod(p, 0o777); return nil })
	return
}

func TestBackupPrintsThePointIDLastAndRestoresIt(t *testing.T) {
	repo, src, cache := setup(t)
	r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src)
	if r.code != 0 {
		t.Fatalf("backup: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	id := lines[len(lines)-1]
	if len(id) != 64 || strings.ContainsAny(id, " :") {
		t.Fatalf("last line %q is not a point ID", id)
	}
	ls := coffer(t, nil, "ls", "--repo", repo, id[:8], strings.TrimPrefix(src, "/")+"/docs")
	if ls.code != 0 || !strings.Contains(ls.out, "report.txt") || strings.Contains(ls.out, "notes.md") {
		t.Fatalf("ls of docs: %+v", ls)
	}
	dst := t.TempDir()
	if r := coffer(t, nil, "restore", "--repo", repo, "latest", "--target", dst, "--include", src+"/docs"); r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, src, "docs", "report.txt")); string(b) != "quarterly report\n" {
		t.Fatalf("restored %q", b)
	}
	if _, err := os.Stat(filepath.Join(dst, src, "notes.md")); err == nil {
		t.Fatal("--include restored more than it named")
	}
}

func TestWrongPassphraseFailsClearlyAndWritesNothing(t *testing.T) {
	repo, src, cache := setup(t)
	list := func() []string {
		var names []string
		filepath.Walk(repo, func(p string, _ os.FileInfo, _ error) error { names = append(names, p); return nil })
		slices.Sort(names)
		return names
	}
	before := list()
	r := coffer(t, []string{"COFFER_PASSPHRASE=not the right passphrase at all"}, "backup", "--repo", repo, "--cache-dir", cache, src)
	if r.code != cli.ExitWrongPassphrase || !strings.Contains(r.err, "wrong passphrase") {
		t.Fatalf("backup with a wrong passphrase: %+v", r)
	}
	if !slices.Equal(before, list()) {
		t.Fatal("a failed open wrote to the repository")
	}
}

func TestUsageErrorsExitTwoAndSayWhatToFix(t *testing.T) {
	repo, src, _ := setup(t)
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"backup", src}, []string{"COFFER_REPOSITORY="}, "--repo"},
		{[]string{"backup", "--repo", repo}, nil, "name at least one"},
		{[]string{"restore", "--repo", repo, "latest", "--target", "x", "--conflict", "merge"}, nil, "copy, overwrite or skip"},
		{[]string{"restore", "--repo", repo, "latest"}, nil, "--target"},
		{[]string{"backup", "--no-such-flag"}, nil, "unknown flag"},
		{[]string{"init", "--repo", t.TempDir() + "/r", "--passphrase-file", "/nonexistent"}, nil, "passphrase file"},
	} {
		r := coffer(t, tc.env, tc.args...)
		if r.code != 2 || !strings.Contains(r.err, tc.want) {
			t.Errorf("coffer %v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, r.code, r.err, tc.want)
		}
	}
	r := coffer(t, []string{"COFFER_PASSPHRASE=short"}, "init", "--repo", t.TempDir()+"/r")
	if r.code != 1 || !strings.Contains(r.err, "at least 16 characters") {
		t.Errorf("short passphrase: %+v", r)
	}
}

func TestUnreadableFileCompletesWithWarnings(t *testing.T) {
	repo, src, cache := setup(t)
	secret := filepath.Join(src, "docs", "locked.txt")
	os.WriteFile(secret, []byte("no access"), 0o000)
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534} // root reads everything; run as nobody
	}
	r := cofferAs(t, cred, nil, "backup", "--repo", repo, "--cache-dir", cache, "--json", src)
	if r.code != 3 {
		t.Fatalf("backup with an unreadable file: exit %d, want 3 (completed with warnings)\n%s%s", r.code, r.out, r.err)
	}
	var s backupSummary
	if err := json.Unmarshal([]byte(r.out), &s); err != nil {
		t.Fatalf("--json output %q: %v", r.out, err)
	}
	if s.Status != "completed with warnings" || len(s.Warnings) != 1 || s.Warnings[0].Path != secret || !strings.Contains(s.Warnings[0].Err, "permission denied") {
		t.Fatalf("summary %+v", s)
	}
	if s.ID == "" || s.Files != 2 {
		t.Fatalf("the point should hold the 2 readable files: %+v", s)
	}
}

func TestRestoreConflictModes(t *testing.T) {
	repo, src, cache := setup(t)
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("backup: %+v", r)
	}
	dst := t.TempDir()
	restored := filepath.Join(dst, src, "notes.md")
	os.MkdirAll(filepath.Dir(restored), 0o755)
	write := func() { os.WriteFile(restored, []byte("local edit\n"), 0o644) }
	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }

	write()
	if r := coffer(t, nil, "restore", "--repo", repo, "latest", "--target", dst, "--conflict", "skip"); r.code != 0 || read(restored) != "local edit\n" {
		t.Fatalf("skip: %+v, file %q", r, read(restored))
	}
	r := coffer(t, nil, "restore", "--repo", repo, "latest", "--target", dst, "--include", src+"/notes.md")
	copies, _ := filepath.Glob(filepath.Join(filepath.Dir(restored), "notes (restored *).md"))
	if r.code != 0 || read(restored) != "local edit\n" || len(copies) != 1 || read(copies[0]) != "# notes\n" {
		t.Fatalf("copy (default): %+v, copies %v", r, copies)
	}
	if r := coffer(t, nil, "restore", "--repo", repo, "latest", "--target", dst, "--conflict", "overwrite"); r.code != 0 || read(restored) != "# notes\n" {
		t.Fatalf("overwrite: %+v, file %q", r, read(restored))
	}
}

func TestPassphraseChange(t *testing.T) {
	repo, _, _ := setup(t)
	newPass := "the new passphrase, also long"
	if r := coffer(t, []string{"COFFER_NEW_PASSPHRASE=" + newPass}, "passphrase", "change", "--repo", repo); r.code != 0 {
		t.Fatalf("change: %+v", r)
	}
	if r := coffer(t, nil, "points", "--repo", repo); r.code != cli.ExitWrongPassphrase || !strings.Contains(r.err, "wrong passphrase") {
		t.Fatalf("old passphrase: %+v", r)
	}
	if r := coffer(t, []string{"COFFER_PASSPHRASE=" + newPass}, "points", "--repo", repo); r.code != 0 {
		t.Fatalf("new passphrase: %+v", r)
	}
}
