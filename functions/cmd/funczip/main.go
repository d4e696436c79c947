// Command funczip writes the Functions app's deployment zip from the staged
// folder (make package), and checks a zip before it is deployed.
//
// azd zips a `dist` folder with each file's mode as the file system gives
// it (azure-dev, pkg/rzip; only `language: go` gets its binary marked
// executable), so a package made on Windows carries coffer-functions
// without its executable bit and the Functions host cannot start it. A
// `dist` that names a .zip is deployed as it is (pkg/project,
// functionAppTarget.Package), so make package writes that zip itself, with
// the modes set here whatever the OS: 0755 for the executables, 0644 for
// the rest, recorded as Unix attributes.
//
//	funczip -dir dist/functions -out dist/functions.zip -exec coffer-functions
//	funczip -check dist/functions.zip -exec coffer-functions -require host.json,...
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	dir := flag.String("dir", "", "the staged folder to zip")
	out := flag.String("out", "", "the zip to write")
	check := flag.String("check", "", "a zip to check instead of writing one")
	execs := flag.String("exec", "coffer-functions", "paths in the zip that must be executable (0755), separated by commas or spaces")
	require := flag.String("require", "", "paths the zip must hold, non-empty, separated by commas or spaces (with -check)")
	flag.Parse()
	var err error
	switch {
	case *check != "":
		err = Check(*check, split(*require), split(*execs))
		if err == nil {
			fmt.Printf("funczip: %s is ready to deploy (%s executable)\n", *check, *execs)
		}
	case *dir != "" && *out != "":
		err = Write(*dir, *out, split(*execs))
	default:
		err = errors.New("give -dir and -out to write a zip, or -check to check one")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "funczip:", err)
		os.Exit(1)
	}
}

// split reads a list separated by commas or spaces.
func split(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// Modes in the zip, whatever the files' modes on disk.
const (
	execMode = 0o755
	fileMode = 0o644
)

// Write zips every regular file under dir into out, paths relative to dir
// with forward slashes, in sorted order. The paths in execs get execMode,
// every other file fileMode. Each exec must be present.
func Write(dir, out string, execs []string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file; stage copies, not links", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the staged folder %s (run make package): %w", dir, err)
	}
	slices.Sort(names)
	for _, e := range execs {
		if !slices.Contains(names, e) {
			return fmt.Errorf("%s has no %s; build it first (make package)", dir, e)
		}
	}
	if abs, err := filepath.Abs(out); err == nil {
		if d, err := filepath.Abs(dir); err == nil && strings.HasPrefix(abs, d+string(filepath.Separator)) {
			return fmt.Errorf("the zip %s must not be inside the folder it zips (%s)", out, dir)
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	zw := zip.NewWriter(f)
	for _, name := range names {
		if err := add(zw, dir, name, slices.Contains(execs, name)); err != nil {
			f.Close()
			os.Remove(out)
			return err
		}
	}
	if err := zw.Close(); err != nil {
		f.Close()
		os.Remove(out)
		return fmt.Errorf("finish %s: %w", out, err)
	}
	return f.Close()
}

func add(zw *zip.Writer, dir, name string, exec bool) error {
	src := filepath.Join(dir, filepath.FromSlash(name))
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: info.ModTime()}
	mode := fs.FileMode(fileMode)
	if exec {
		mode = execMode
	}
	// SetMode records Unix attributes (creator "Unix"), which is what the
	// platform's unzip reads the executable bit from.
	h.SetMode(mode)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	if _, err := io.Copy(w, in); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	return nil
}

// Check reads a zip and refuses it unless every required path is there and
// not empty, each exec has mode 0755, and every other file 0644.
func Check(path string, required, execs []string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("open %s (run make package): %w", path, err)
	}
	defer zr.Close()
	var errs []error
	seen := map[string]*zip.File{}
	for _, f := range zr.File {
		seen[f.Name] = f
		if f.FileInfo().IsDir() {
			continue
		}
		want := fs.FileMode(fileMode)
		if slices.Contains(execs, f.Name) {
			want = execMode
		}
		if got := f.Mode(); got != want {
			errs = append(errs, fmt.Errorf("%s has mode %v, want %v", f.Name, got, want))
		}
		if f.CreatorVersion>>8 != 3 { // 3 = Unix (APPNOTE 4.4.2)
			errs = append(errs, fmt.Errorf("%s carries no Unix mode (made by host %d); the platform would not see its executable bit", f.Name, f.CreatorVersion>>8))
		}
	}
	for _, r := range slices.Concat(execs, required) {
		if f := seen[r]; f == nil || f.UncompressedSize64 == 0 {
			errs = append(errs, fmt.Errorf("%s is missing or empty", r))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s cannot be deployed:\n%w", path, err)
	}
	return nil
}
