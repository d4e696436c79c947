package archiver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/fsmeta"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/policy"
)

// CacheDirTag is the name and signature of a cache folder's marker, from
// the Cache Directory Tagging Specification (bford.info/cachedir): only a
// file that starts with the signature marks its folder, so a stray empty
// CACHEDIR.TAG does not hide a folder.
const (
	CacheDirTag          = "CACHEDIR.TAG"
	CacheDirTagSignature = "Signature: 8a477f597d28d172789f06886806bc55"
)

// Filter is what restic's backup options leave out, in one place: the
// policy's exclusions in a vault, and `coffer backup --exclude…` flags.
// Patterns use the policy's syntax (policy.MatchExclude), so an exclude
// given on the command line means what it means in a policy.
type Filter struct {
	// Exclude patterns; Windows agents match them without regard to case,
	// as the file system does.
	Exclude []string
	// IExclude patterns always ignore case.
	IExclude []string
	// IfPresent leaves out a folder holding a file of this name. "NAME:HEADER"
	// requires the file to start with HEADER, as restic's
	// --exclude-if-present does.
	IfPresent []string
	// Caches leaves out folders marked by a CACHEDIR.TAG with the standard
	// signature.
	Caches bool
	// OneFileSystem keeps to the file systems of the chosen paths: a mount
	// point below them is stored as an empty folder, as restic does, so a
	// restore recreates it.
	OneFileSystem bool
}

// NewFilter checks every pattern, so a typo stops the backup at the start
// instead of quietly excluding nothing.
func NewFilter(f Filter) (*Filter, error) {
	var errs []error
	for _, list := range [][]string{f.Exclude, f.IExclude} {
		for _, p := range list {
			if err := policy.CheckPattern(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, m := range f.IfPresent {
		if name, _, _ := strings.Cut(m, ":"); name == "" || strings.ContainsAny(name, `/\`) {
			errs = append(errs, fmt.Errorf("--exclude-if-present %q: give a file name, optionally followed by :HEADER", m))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if f.Caches {
		f.IfPresent = append(f.IfPresent, CacheDirTag+":"+CacheDirTagSignature)
	}
	return &f, nil
}

// Empty reports whether the filter leaves nothing out.
func (f *Filter) Empty() bool {
	return f == nil || len(f.Exclude)+len(f.IExclude)+len(f.IfPresent) == 0 && !f.OneFileSystem
}

// excludedByName reports whether a pattern excludes path, a native path.
func (f *Filter) excludedByName(path string) bool {
	slash := filepath.ToSlash(path)
	fold := runtime.GOOS == "windows"
	for _, p := range f.Exclude {
		if policy.MatchExclude(p, slash, fold) {
			return true
		}
	}
	for _, p := range f.IExclude {
		if policy.MatchExclude(p, slash, true) {
			return true
		}
	}
	return false
}

// excludedByMarker reports whether the folder dir holds one of the marker
// files. A marker that cannot be read does not exclude: a backup should
// rather hold too much than silently too little.
func (f *Filter) excludedByMarker(dir string) bool {
	for _, m := range f.IfPresent {
		name, header, hasHeader := strings.Cut(m, ":")
		p := filepath.Join(dir, name)
		if !hasHeader {
			if _, err := os.Lstat(p); err == nil {
				return true
			}
			continue
		}
		if startsWith(p, header) {
			return true
		}
	}
	return false
}

func startsWith(path, header string) bool {
	fh, err := os.Open(path)
	if err != nil {
		return false
	}
	defer fh.Close()
	buf := make([]byte, len(header))
	if _, err := io.ReadFull(bufio.NewReader(fh), buf); err != nil {
		return false
	}
	return bytes.Equal(buf, []byte(header))
}

// skipEntry reports whether a listed entry is left out of the point. The
// name patterns come first: they cost no system call.
// mayExclude reports whether skipEntry can leave anything out, so that a
// walk without filters need not build each entry's path twice.
func (a *archiver) mayExclude() bool {
	return a.opts.Exclude != nil || !a.opts.Filter.Empty()
}

func (a *archiver) skipEntry(path string, de fs.DirEntry) bool {
	if a.opts.Exclude != nil && a.opts.Exclude(path) {
		return true
	}
	f := a.opts.Filter
	if f.Empty() {
		return false
	}
	if f.excludedByName(path) {
		return true
	}
	return len(f.IfPresent) > 0 && de.IsDir() && f.excludedByMarker(path)
}

// otherDevice reports whether a folder below the chosen paths lies on a
// file system none of them is on, for --one-file-system.
func (a *archiver) otherDevice(meta fsmeta.Meta) bool {
	return a.opts.Filter != nil && a.opts.Filter.OneFileSystem && a.devices != nil && !a.devices[meta.Dev]
}

// rootDevices are the file systems of the chosen paths.
func rootDevices(roots []string) (map[uint64]bool, error) {
	devs := map[uint64]bool{}
	for _, r := range roots {
		m, err := fsmeta.Lstat(r)
		if err != nil {
			return nil, fmt.Errorf("--one-file-system: read %s: %w", r, err)
		}
		devs[m.Dev] = true
	}
	return devs, nil
}

// dryRunResult is what a dry run found: the point that would have been
// stored, without an ID, and the warnings a real backup would give.
func (a *archiver) dryRunResult(roots []string, rootID crypto.ID) *Result {
	p := &repository.Point{
		Time: a.repo.Now().UTC(), Hostname: a.opts.Hostname, Username: a.opts.Username,
		Paths: roots, Tree: rootID, Tags: a.opts.Tags,
		Summary: repository.Summary{
			Files: a.stats.files.Load(), Dirs: a.stats.dirs.Load(), Bytes: a.stats.bytes.Load(),
			BytesRead: a.prog.BytesRead.Load(), BytesNew: a.prog.BytesNew.Load(),
			Warnings: int64(len(a.warnings)), Duration: time.Since(a.start),
		},
	}
	if a.opts.Parent != nil {
		p.Parent = a.opts.Parent.ID
	}
	slices.SortFunc(a.warnings, func(x, y Warning) int { return strings.Compare(x.Path, y.Path) })
	return &Result{Point: p, Warnings: a.warnings, Changes: a.change.result(a.repo.Index(), a.opts.Parent, p.Summary.Files)}
}
