package restorer

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
	"github.com/coffer-backup/coffer/shared/storage/local"
)

// Every system refuses the names that would leave their folder.
func TestNamesThatLeaveTheFolderAreRefusedOnEverySystem(t *testing.T) {
	for _, goos := range []string{"linux", "darwin", "windows"} {
		for _, name := range []string{"", ".", "..", "../escaped", "a/b", "/etc/passwd", "a\x00b", "\x00"} {
			if got, _, err := LocalName(name, goos); !errors.Is(err, ErrUnsafeName) {
				t.Errorf("LocalName(%q, %s) = %q, %v; want ErrUnsafeName", name, goos, got, err)
			}
		}
	}
	// On Windows a backslash separates too.
	for _, name := range []string{`..\escaped`, `\Windows`, `a\b`, `c:\x`, `\\server\share`} {
		if got, _, err := LocalName(name, "windows"); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("LocalName(%q, windows) = %q, %v; want ErrUnsafeName", name, got, err)
		}
	}
	// On Linux those are ordinary names and are restored as they are.
	for _, name := range []string{`..\escaped`, `C:`, "CON", "nul.txt", "x.", ".. ", "a:b", "...", "tab\there"} {
		if got, renamed, err := LocalName(name, "linux"); err != nil || renamed || got != name {
			t.Errorf("LocalName(%q, linux) = %q, %t, %v; want it unchanged", name, got, renamed, err)
		}
	}
}

// On Windows a name Windows cannot hold, or would read as a device or a
// stream, is restored under a safe look-alike.
func TestWindowsNamesAreMappedToSafeOnes(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"report.docx", "report.docx"},
		{"..a", "..a"},
		{" leading space", " leading space"},
		{"CONSOLE.txt", "CONSOLE.txt"},
		{"COM10", "COM10"},
		{"CON", "CON_"},
		{"con", "con_"},
		{"nul.txt", "nul_.txt"},
		{"NUL.tar.gz", "NUL_.tar.gz"},
		{"Aux .log", "Aux _.log"},
		{"LPT9", "LPT9_"},
		{"com¹", "com¹_"},
		{"CONOUT$", "CONOUT$_"},
		{"x.", "x．"},
		{"x. .", "x．␠．"},
		{".. ", "．．␠"},
		{"C:", "C："},
		{"Z:evil", "Z：evil"},
		{"...", "．．．"},
		{"trailing ", "trailing␠"},
		{"CON.", "CON．"},
		{"a:b", "a：b"},
		{"file.txt:hidden", "file.txt：hidden"},
		{`what?<is>"this"|*`, "what？＜is＞＂this＂｜＊"},
		{"bell\a", "bell␇"},
		{"\x1f", "␟"},
	} {
		got, renamed, err := LocalName(c.in, "windows")
		if err != nil || got != c.want || renamed != (c.in != c.want) {
			t.Errorf("LocalName(%q, windows) = %q, %t, %v; want %q", c.in, got, renamed, err, c.want)
		}
	}
}

// windowsSafe is the test's own statement of a name Windows creates as
// written and never reads as a path, device or stream.
func windowsSafe(name string) bool {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "<>:\"/\\|?*") {
		return false
	}
	for _, b := range []byte(name) {
		if b < 0x20 {
			return false
		}
	}
	if last := name[len(name)-1]; last == '.' || last == ' ' {
		return false
	}
	stem, _, _ := strings.Cut(name, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	devices := []string{"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"}
	for d := '0'; d <= '9'; d++ {
		devices = append(devices, "COM"+string(d), "LPT"+string(d))
	}
	return !slices.Contains(devices, stem)
}

// For any name: refused, or mapped to a safe name that maps to itself; a
// name that was already safe is kept.
func FuzzLocalName(f *testing.F) {
	for _, s := range []string{"", ".", "..", ".. ", "x.", "CON", "nul.txt", "a:b", `a\b`, "C:x", "../x", "a\x00", "é.", "\xff.", "COM¹ .x", "ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, goos := range []string{"linux", "windows"} {
			got, renamed, err := LocalName(name, goos)
			if err != nil {
				if !errors.Is(err, ErrUnsafeName) {
					t.Fatalf("LocalName(%q, %s): %v is not ErrUnsafeName", name, goos, err)
				}
				continue
			}
			if got == "" || got == "." || got == ".." || strings.ContainsAny(got, "/\x00") {
				t.Fatalf("LocalName(%q, %s) = %q, which leaves its folder", name, goos, got)
			}
			if goos != "windows" {
				if got != name || renamed {
					t.Fatalf("LocalName(%q, %s) = %q: names are kept off Windows", name, goos, got)
				}
				continue
			}
			if !windowsSafe(got) {
				t.Fatalf("LocalName(%q, windows) = %q, which Windows would not keep as written", name, got)
			}
			if again, re, err := LocalName(got, "windows"); err != nil || re || again != got {
				t.Fatalf("LocalName(%q) = %q, but that maps to %q, %t, %v", name, got, again, re, err)
			}
			if windowsSafe(name) && utf8.ValidString(name) && (got != name || renamed) {
				t.Fatalf("the safe name %q was renamed to %q", name, got)
			}
		}
	})
}

// trees is a tree loader that hands out trees as they are, never through
// tree.Decode, as a buggy or hostile caller of Restore might.
type trees map[crypto.ID]*tree.Tree

func (m trees) LoadTree(_ context.Context, id crypto.ID) (*tree.Tree, error) {
	if t, ok := m[id]; ok {
		return t, nil
	}
	return nil, errors.New("no such tree")
}

func emptyRepo(t *testing.T) *repository.Repository {
	t.Helper()
	be, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(t.Context(), be, []byte("correct horse battery staple"),
		repository.Options{KDF: &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sdCalls records where a security descriptor would be applied.
func sdCalls(t *testing.T) func() []string {
	var mu sync.Mutex
	var paths []string
	old := writeSD
	writeSD = func(path string, sd []byte) error {
		mu.Lock()
		paths = append(paths, path)
		mu.Unlock()
		return nil
	}
	t.Cleanup(func() { writeSD = old })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(paths)
	}
}

// listAll lists every entry below dir, relative to it, links not followed.
func listAll(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// Attack 11: a tree that never went through tree.Decode names entries
// "../escaped", "..", an absolute path, a NUL; a symlink that points out
// of the target carries an ACL; a hard link names a file outside. The
// restore writes nothing outside the target, names each refused entry,
// and applies no ACL through the link.
func TestHostileTreeWithoutDecodeCannotEscapeTheTarget(t *testing.T) {
	sds := sdCalls(t)
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.Mkdir(outside, 0o755)
	target := filepath.Join(base, "target", "inner")
	acl := []byte("an ACL granting Everyone full control")

	sub, root := crypto.ID{1}, crypto.ID{2}
	loader := trees{
		sub: {Nodes: []tree.Node{{Name: []byte("escaped2"), Type: tree.File}}},
		root: {Nodes: []tree.Node{
			{Name: []byte("../escaped"), Type: tree.File},
			{Name: []byte("../../escaped-dir"), Type: tree.Dir, Subtree: &sub},
			{Name: []byte(".."), Type: tree.Dir, Subtree: &sub},
			{Name: []byte("."), Type: tree.Dir, Subtree: &sub},
			{Name: []byte(""), Type: tree.File},
			{Name: []byte(filepath.Join(outside, "absolute")), Type: tree.File},
			{Name: []byte("nul\x00byte"), Type: tree.File},
			{Name: []byte("link"), Type: tree.Symlink, LinkTarget: []byte(outside), WinSD: acl, Mode: 0o777},
			{Name: []byte("hard"), Type: tree.HardLink, LinkTarget: []byte("../../outside/victim")},
			{Name: []byte("ok.txt"), Type: tree.File, WinSD: acl, Mode: 0o640},
		}},
	}
	// Owner: elevated, so security descriptors are applied at all.
	res, err := Restore(t.Context(), emptyRepo(t), &repository.Point{Tree: root}, Options{Target: target, Trees: loader, Owner: true})
	if err != nil {
		t.Fatal(err)
	}

	if got := listAll(t, base); !slices.Equal(got, []string{"outside", "target", "target/inner", "target/inner/link", "target/inner/ok.txt"}) {
		t.Fatalf("after the restore the folder holds %q; want only the target with link and ok.txt, and outside untouched", got)
	}
	var refused int
	for _, f := range res.Failed {
		if strings.Contains(f.Err, ErrUnsafeName.Error()) {
			refused++
		}
	}
	if refused != 7 {
		t.Errorf("%d entries refused as unsafe, want 7; failures: %v", refused, res.Failed)
	}
	if !slices.ContainsFunc(res.Failed, func(f Failure) bool { return strings.HasSuffix(f.Path, "hard") }) {
		t.Errorf("the hard link to a path outside the point is not reported: %v", res.Failed)
	}
	if got := sds(); !slices.Equal(got, []string{filepath.Join(target, "ok.txt")}) {
		t.Errorf("security descriptors applied to %q; want only ok.txt, never through the link", got)
	}
	if fi, err := os.Stat(outside); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("the link's target changed mode: %v, %v", fi.Mode(), err)
	}
}

// An entry that is a link on disk where the point has a file (planted
// while the restore ran) gets no metadata at all.
func TestMetadataIsNeverAppliedThroughAPlantedLink(t *testing.T) {
	sds := sdCalls(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("x"), 0o600)
	planted := filepath.Join(dir, "planted")
	if err := os.Symlink(victim, planted); err != nil {
		t.Fatal(err)
	}
	r := &restorer{}
	r.applyMeta(planted, metaOf(&tree.Node{Name: []byte("planted"), Type: tree.File, Mode: 0o777, WinSD: []byte("acl")}))
	if got := sds(); len(got) > 0 {
		t.Errorf("a security descriptor was applied to %q", got)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
		t.Errorf("the link's target is now %v", fi.Mode().Perm())
	}
	if len(r.res.Warnings) != 1 || !strings.Contains(r.res.Warnings[0].Err, "symlink is now in its place") {
		t.Errorf("warnings = %v; want one naming the symlink in the file's place", r.res.Warnings)
	}
}

// Restoring on Windows, names it cannot hold are restored under their safe
// look-alikes, each reported as a warning, with the rest of the point.
func TestWindowsRestoreRenamesAndReportsNamesItCannotHold(t *testing.T) {
	old := localOS
	localOS = "windows"
	t.Cleanup(func() { localOS = old })
	target := t.TempDir()
	root := crypto.ID{3}
	loader := trees{root: {Nodes: []tree.Node{
		{Name: []byte("CON"), Type: tree.File},
		{Name: []byte("nul.txt"), Type: tree.File},
		{Name: []byte("x."), Type: tree.File},
		{Name: []byte(".. "), Type: tree.File},
		{Name: []byte("report.docx"), Type: tree.File},
		{Name: []byte(`..\escaped`), Type: tree.File},
	}}}
	res, err := Restore(t.Context(), emptyRepo(t), &repository.Point{Tree: root}, Options{Target: target, Trees: loader})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := listAll(t, target), []string{"CON_", "nul_.txt", "report.docx", "x．", "．．␠"}; !slices.Equal(got, want) {
		t.Fatalf("restored %q, want %q", got, want)
	}
	var renamed []string
	for _, rn := range res.Renamed {
		renamed = append(renamed, rn.Path+" -> "+filepath.Base(rn.As))
	}
	slices.Sort(renamed)
	if want := []string{"..  -> ．．␠", "CON -> CON_", "nul.txt -> nul_.txt", "x. -> x．"}; !slices.Equal(renamed, want) {
		t.Errorf("renamed %q, want %q", renamed, want)
	}
	if len(res.Warnings) != 4 || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Err, "separator") {
		t.Errorf("warnings %v, failures %v; want the 4 renames and the backslash name refused", res.Warnings, res.Failed)
	}
}
