package winlane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// AwkwardNames are names a Linux machine holds and Windows cannot as they
// are: devices (with and without an extension, in any case), trailing
// dots and spaces, each character Windows refuses, bytes that are not
// UTF-8, and a name that mapping makes longer than NTFS takes. A folder with such
// a name holds one too, so a renamed folder's contents are checked.
var AwkwardNames = []string{
	"CON", "aux.txt", "nul.tar.gz", "Com1", "lpt9.log", "PRN",
	"trailing dot.", "trailing space ", "dots and spaces. .",
	"a<b", "a>b", "a:b", `a"b`, "a|b", "a?b", "a*b",
	"folder:1/inner?.txt", "CON.d/AUX",
	"latin-1 caf\xe9.txt",             // not UTF-8
	"CON." + strings.Repeat("y", 251), // 255 bytes: CON_ would make it too long for NTFS
}

// awkwardNames makes a tree of AwkwardNames on this machine, backs it up
// with the Linux coffer, restores it with coffer.exe under wine and checks
// that every file is back, under a name Windows keeps, with the same
// content, each rename reported in restore --json and none written to a
// device or dropped.
func (st *storyState) awkwardNames(ctx context.Context) error {
	src := filepath.Join(st.root, "names-src")
	want := map[string][]byte{} // path in the source, slash-separated → content
	for _, n := range AwkwardNames {
		p := filepath.Join(src, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		content := []byte("the file named " + n + "\n")
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return err
		}
		want[n] = content
	}
	repo := filepath.Join(st.root, "names-repo")
	env := append(os.Environ(), "COFFER_PASSPHRASE="+passphrase)
	for _, args := range [][]string{{"init", "--repo", repo}, {"backup", "--repo", repo, src}} {
		cmd := exec.CommandContext(ctx, st.CofferLin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("coffer %s on Linux: %v\n%s", strings.Join(args, " "), err, indent(string(out), "    "))
		}
	}
	r, err := st.coffer(ctx, passphrase, []int{0, 3}, "restore", "--repo", st.win("names-repo"), "latest",
		"--target", st.win("names-restore"), "--json")
	if err != nil {
		return err
	}
	var rep restoreReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		return fmt.Errorf("restore --json: %v: %s", err, r)
	}
	var problems []string
	for _, f := range rep.Failed {
		problems = append(problems, "not restored: "+f.Path+": "+f.Reason)
	}
	for _, c := range rep.Copies {
		problems = append(problems, "written as a copy beside an existing file: "+c)
	}
	// The point names the source by its path on Linux; the restore puts it
	// below the target with the same folders.
	pointSrc := strings.TrimPrefix(filepath.ToSlash(src), "/")
	renamed := map[string]string{} // point path → Windows path
	for _, rn := range rep.Renamed {
		renamed[rn.Path] = rn.As
	}
	// Where each file of the source landed, following renamed folders.
	var restored []string
	for n, content := range want {
		rel := pointSrc + "/" + n
		// Apply the renames of the file and of each folder above it, each
		// reported under its path in the point.
		orig := strings.Split(rel, "/")
		parts := slices.Clone(orig)
		for i := range orig {
			if as, ok := renamed[jsonForm(strings.Join(orig[:i+1], "/"))]; ok {
				parts[i] = lastElem(as)
			}
		}
		winPath := st.win("names-restore") + `\` + strings.Join(parts, `\`)
		local := st.local(winPath)
		got, err := os.ReadFile(local)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			problems = append(problems, fmt.Sprintf("%s: not found where the report says (%s)", n, winPath))
			continue
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", n, err))
			continue
		case !bytes.Equal(got, content):
			problems = append(problems, fmt.Sprintf("%s: restored as %s with other content (%q)", n, winPath, got))
		}
		restored = append(restored, local)
		if parts[len(parts)-1] == n[strings.LastIndexByte(n, '/')+1:] {
			problems = append(problems, fmt.Sprintf("%s: restored under its own name, which Windows cannot hold", n))
		} else if _, ok := renamed[jsonForm(rel)]; !ok {
			problems = append(problems, fmt.Sprintf("%s: renamed without being reported", n))
		}
	}
	// Nothing else was written below the target: no stray copy, nothing
	// under a name the report does not give.
	var extra []string
	filepath.WalkDir(st.local(st.win("names-restore")), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !slices.Contains(restored, p) {
			extra = append(extra, p)
		}
		return nil
	})
	for _, p := range extra {
		problems = append(problems, "written but not accounted for: "+p)
	}
	if err := unexpectedWarnings(rep.Warnings, func(w pathReason) bool {
		return strings.Contains(w.Reason, "restored under this name")
	}); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("%d of %d awkward names went wrong:\n%s", len(problems), len(want), indent(strings.Join(problems, "\n"), "    "))
	}
	var examples []string
	for _, rn := range rep.Renamed {
		if p := strings.TrimPrefix(rn.Path, pointSrc+"/"); len(p) < 30 && len(examples) < 4 {
			examples = append(examples, fmt.Sprintf("%q → %q", p, lastElem(rn.As)))
		}
	}
	fmt.Fprintf(st.Out, "    %d files with names Windows cannot hold restored, %d renames reported (folders included), such as %s\n",
		len(want), len(rep.Renamed), strings.Join(examples, ", "))
	return nil
}

// jsonForm is s as encoding/json reports it: each byte that is not UTF-8
// becomes U+FFFD. The restored name itself keeps such bytes ("%E9").
func jsonForm(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func lastElem(winPath string) string { return winPath[strings.LastIndexByte(winPath, '\\')+1:] }

// local turns a C:\… path of the story into the path of this machine.
func (st *storyState) local(winPath string) string {
	rel := strings.TrimPrefix(winPath, `C:\coffer-lane`)
	return filepath.Join(st.root, filepath.FromSlash(strings.ReplaceAll(rel, `\`, "/")))
}
