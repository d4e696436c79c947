package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The sample folder is a small branch office share: text, spreadsheets as
// CSV, and binary scans, in a few folders, made the same way every time.
var sampleFolders = []string{"Finance", "Finance/2026", "HR", "Projects/alpha", "Projects/beta", "Scans"}

// makeSample fills dir with n small files and returns how many it made.
func makeSample(dir string, n int) (int, error) {
	rng := rand.New(rand.NewPCG(2026, 11))
	for i := range n {
		folder := sampleFolders[i%len(sampleFolders)]
		var name string
		var data []byte
		switch i % 3 {
		case 0:
			name = fmt.Sprintf("notes-%02d.txt", i)
			data = sampleText(rng, 5+rng.IntN(60))
		case 1:
			name = fmt.Sprintf("ledger-%02d.csv", i)
			data = sampleCSV(rng, 10+rng.IntN(200))
		default:
			name = fmt.Sprintf("scan-%02d.bin", i)
			data = make([]byte, 512+rng.IntN(40<<10))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
		}
		if i == n-1 {
			folder, name, data = "Scans", "empty.txt", nil // an empty file must come back too
		}
		p := filepath.Join(dir, filepath.FromSlash(folder), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return i, err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return i, err
		}
	}
	return n, nil
}

var words = strings.Fields("backup branch office invoice quarter report vault restore ledger payroll project alpha beta scan policy daily archive")

func sampleText(rng *rand.Rand, lines int) []byte {
	var b bytes.Buffer
	for range lines {
		for w := range 4 + rng.IntN(10) {
			if w > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[rng.IntN(len(words))])
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func sampleCSV(rng *rand.Rand, rows int) []byte {
	var b bytes.Buffer
	b.WriteString("date,account,amount\n")
	for r := range rows {
		fmt.Fprintf(&b, "2026-%02d-%02d,%d,%d.%02d\n", 1+r%12, 1+r%28, 4000+rng.IntN(900), rng.IntN(100000), rng.IntN(100))
	}
	return b.Bytes()
}

// changeSample edits, adds and deletes a few files of a sample folder, as a
// working day would, and says what it did.
func changeSample(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() && filepath.Base(p) != "empty.txt" {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	slices.Sort(files)
	if len(files) < 6 {
		return "", fmt.Errorf("the sample folder %s has only %d files", dir, len(files))
	}
	edited := []string{files[0], files[len(files)/2], files[len(files)-2]}
	for _, p := range edited {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return "", err
		}
		_, err = fmt.Fprintf(f, "\nchanged on the second day: %s\n", filepath.Base(p))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
	}
	added := []string{filepath.Join(dir, "HR", "new-starter.txt"), filepath.Join(dir, "Projects", "gamma", "plan.txt")}
	for _, p := range added {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte("added on the second day\n"), 0o644); err != nil {
			return "", err
		}
	}
	removed := files[len(files)-1]
	if err := os.Remove(removed); err != nil {
		return "", err
	}
	rel := func(p string) string { r, _ := filepath.Rel(dir, p); return filepath.ToSlash(r) }
	return fmt.Sprintf("edited %s, %s and %s; added %s and %s; deleted %s",
		rel(edited[0]), rel(edited[1]), rel(edited[2]), rel(added[0]), rel(added[1]), rel(removed)), nil
}

// treeEntry is one path of a folder: a file's content, a folder, or a link.
type treeEntry struct {
	kind string // "file", "dir", "link"
	data []byte // file content or link target
}

func readTree(root string) (map[string]treeEntry, error) {
	m := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case e.IsDir():
			m[rel] = treeEntry{kind: "dir"}
		case e.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = treeEntry{kind: "link", data: []byte(t)}
		case e.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = treeEntry{kind: "file", data: b}
		default:
			m[rel] = treeEntry{kind: e.Type().String()}
		}
		return nil
	})
	return m, err
}

// compareTrees checks that got holds exactly what want holds: the same
// paths, each file with the same bytes. It returns the number of files and
// their total size.
func compareTrees(want, got string) (files int, size int64, err error) {
	w, err := readTree(want)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", want, err)
	}
	g, err := readTree(got)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", got, err)
	}
	var diffs []string
	for _, p := range slices.Sorted(maps.Keys(w)) {
		we := w[p]
		ge, ok := g[p]
		switch {
		case !ok:
			diffs = append(diffs, p+" is missing")
		case we.kind != ge.kind:
			diffs = append(diffs, fmt.Sprintf("%s is a %s, not a %s", p, ge.kind, we.kind))
		case !bytes.Equal(we.data, ge.data):
			diffs = append(diffs, fmt.Sprintf("%s differs (%d bytes, want %d)", p, len(ge.data), len(we.data)))
		}
		if we.kind == "file" {
			files++
			size += int64(len(we.data))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(g)) {
		if _, ok := w[p]; !ok {
			diffs = append(diffs, p+" should not be there")
		}
	}
	if len(diffs) > 0 {
		if len(diffs) > 5 {
			diffs = append(diffs[:5], fmt.Sprintf("and %d more differences", len(diffs)-5))
		}
		return files, size, fmt.Errorf("%s differs from %s: %s", got, want, strings.Join(diffs, "; "))
	}
	return files, size, nil
}

// restoredPath is where `coffer restore --target target` puts the backed-up
// absolute path src: below target, by its components, a Windows volume
// ("C:") as its letter, as the archiver names them.
func restoredPath(target, src string) string {
	vol := filepath.VolumeName(src)
	parts := []string{target}
	if vol != "" {
		parts = append(parts, strings.TrimSuffix(vol, ":"))
	}
	parts = append(parts, strings.Split(strings.Trim(filepath.ToSlash(src[len(vol):]), "/"), "/")...)
	return filepath.Join(parts...)
}

// humanSize is a byte count for people.
func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
