package policy

import (
	"fmt"
	"path"
	"strings"
)

// isAbs reports whether p is absolute on POSIX ("/x") or Windows ("C:\x",
// "C:/x", "\\server\share"). The control plane cannot know the agent's
// system, so it accepts both forms.
func isAbs(p string) bool {
	switch {
	case strings.HasPrefix(p, "/"):
		return true
	case isDrive(p):
		return true
	case strings.HasPrefix(p, `\\`):
		parts := strings.SplitN(p[2:], `\`, 3)
		return len(parts) >= 2 && parts[0] != "" && parts[1] != ""
	}
	return false
}

// isDrive reports whether p starts with a Windows drive root, "C:\" or "C:/".
func isDrive(p string) bool {
	if len(p) < 3 || p[1] != ':' || (p[2] != '\\' && p[2] != '/') {
		return false
	}
	l := p[0] | 0x20
	return l >= 'a' && l <= 'z'
}

// isWindows reports whether p is written as a Windows absolute path, whose
// backslashes are separators.
func isWindows(p string) bool { return isDrive(p) || strings.HasPrefix(p, `\\`) }

// isClean reports whether p has no "." or ".." element and no NUL, which
// would make what is backed up differ from what the user reads.
func isClean(p string) bool {
	if strings.ContainsRune(p, 0) {
		return false
	}
	if isWindows(p) {
		p = strings.ReplaceAll(p, `\`, "/")
	}
	for _, e := range strings.Split(p, "/") {
		if e == "." || e == ".." {
			return false
		}
	}
	return true
}

// compilePattern splits an exclude entry into path elements and says
// whether it is a Windows pattern (matched without regard to case).
func compilePattern(pattern string) (elems []string, windows bool, err error) {
	if strings.ContainsRune(pattern, 0) {
		return nil, false, fmt.Errorf("%q contains a NUL character; remove it", pattern)
	}
	p := pattern
	if isWindows(p) {
		windows = true
		p = strings.ReplaceAll(p, `\`, "/")
	}
	switch {
	case !strings.Contains(p, "/"):
		p = "**/" + p // a bare name matches at any depth
	case strings.HasPrefix(p, "/"), windows, p == "**", strings.HasPrefix(p, "**/"):
	default:
		return nil, false, fmt.Errorf("%q has a folder separator but is not absolute; start it with / (or C:\\ on Windows) to match from the root, or with **/ to match at any depth", pattern)
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	elems = strings.Split(p, "/")
	for _, e := range elems {
		if e == "**" {
			continue
		}
		// path.Match checks the whole pattern even when the name differs.
		if _, err := path.Match(e, ""); err != nil {
			return nil, false, fmt.Errorf("%q has a malformed part %q (check [ ] pairs and \\ escapes; see path.Match)", pattern, e)
		}
	}
	return elems, windows, nil
}

// CheckPattern reports why an exclude entry is malformed, in words that
// say how to fix it; nil means it is sound.
func CheckPattern(pattern string) error {
	_, _, err := compilePattern(pattern)
	return err
}

// MatchExclude reports whether the exclude entry pattern excludes name, a
// slash-separated absolute path (filepath.ToSlash of the native path). A
// malformed pattern excludes nothing; Validate reports it.
//
// Pattern syntax:
//   - Elements are separated by "/". In a Windows pattern (one starting with
//     a drive, "C:\", or a share, "\\server\share") "\" is a separator too
//     and matching ignores case; elsewhere "\" escapes as in path.Match.
//   - Within an element, path.Match syntax: "*" any run of characters,
//     "?" one character, "[a-z]" and "[^a-z]" classes.
//   - An element that is exactly "**" matches any number of elements, none
//     included. Elsewhere "**" means the same as "*".
//   - A pattern without a separator, such as "*.tmp" or "node_modules",
//     matches a name at any depth. A pattern with one must be absolute or
//     start with "**/".
//   - A pattern that matches a folder excludes everything under it.
//
// foldCase makes every pattern ignore case; Windows agents set it because
// their file systems do.
func MatchExclude(pattern, name string, foldCase bool) bool {
	pe, windows, err := compilePattern(pattern)
	if err != nil {
		return false
	}
	fold := foldCase || windows
	if len(name) > 1 {
		name = strings.TrimSuffix(name, "/")
	}
	ne := strings.Split(name, "/")
	if fold {
		for i := range pe {
			pe[i] = strings.ToLower(pe[i])
		}
		for i := range ne {
			ne[i] = strings.ToLower(ne[i])
		}
	}
	// cur[j]: the pattern elements so far match the first j name elements.
	cur := make([]bool, len(ne)+1)
	next := make([]bool, len(ne)+1)
	cur[0] = true
	for _, p := range pe {
		if p == "**" {
			reached := false
			for j := range cur {
				reached = reached || cur[j]
				next[j] = reached
			}
		} else {
			next[0] = false
			for j := 1; j <= len(ne); j++ {
				next[j] = false
				if cur[j-1] {
					ok, _ := path.Match(p, ne[j-1])
					next[j] = ok
				}
			}
		}
		cur, next = next, cur
	}
	// A match of any leading part of the name is a folder holding it.
	for j := 1; j <= len(ne); j++ {
		if cur[j] {
			return true
		}
	}
	return false
}
