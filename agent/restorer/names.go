package restorer

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrUnsafeName marks an entry whose name would leave its folder: it is
// never created, on any system.
var ErrUnsafeName = errors.New("unsafe name")

// LocalName returns the name under which an entry of a point is created on
// the system goos (runtime.GOOS), whether it differs from the name in the
// point, or ErrUnsafeName.
//
// The restorer checks every name itself, whatever loaded the tree: a tree
// that never went through tree.Decode still cannot make it write outside
// the target. On every system a name that is empty, "." or "..", holds a
// "/" or a NUL, is refused, and so is every absolute name, since it starts
// with a separator. On Windows "\" is a separator too, so a name holding
// one is refused as well. A name Windows cannot hold or would read as
// something else (a device such as CON or nul.txt, a trailing dot or space
// that Win32 strips, so that ".. " would be "..", a ":" that names a drive
// or an alternate data stream, the characters < > " | ? * and control
// characters) is mapped to a look-alike that Windows keeps as written, and
// the caller reports the new name. Bytes that are not UTF-8 become "%XX",
// and a name the mapping makes longer than NTFS's 255 UTF-16 units is
// shortened with a hash (fitWindowsName).
//
// The mapping is a pure function of its input, so it is tested on every
// system, and it is stable: a mapped name maps to itself.
func LocalName(name, goos string) (local string, renamed bool, err error) {
	switch {
	case name == "":
		return "", false, fmt.Errorf("%w: an entry has an empty name", ErrUnsafeName)
	case name == "." || name == "..":
		return "", false, fmt.Errorf("%w: an entry is named %q", ErrUnsafeName, name)
	case strings.ContainsRune(name, '/'):
		return "", false, fmt.Errorf("%w: %q holds a path separator", ErrUnsafeName, name)
	case strings.IndexByte(name, 0) >= 0:
		return "", false, fmt.Errorf("%w: %q holds a NUL", ErrUnsafeName, name)
	}
	if goos != "windows" {
		return name, false, nil
	}
	if strings.ContainsRune(name, '\\') {
		return "", false, fmt.Errorf("%w: %q holds a path separator on Windows", ErrUnsafeName, name)
	}
	local = windowsName(name)
	return local, local != name, nil
}

// windowsLookAlikes replace the characters Windows refuses in a name with
// their full-width forms, as other tools that store names from Unix on
// Windows do.
var windowsLookAlikes = map[rune]rune{
	'<': '＜', '>': '＞', ':': '：', '"': '＂', '|': '｜', '?': '？', '*': '＊',
}

const (
	fullWidthDot = '．' // for a trailing '.'
	spaceSymbol  = '␠' // for a trailing ' '
)

// windowsName maps a name that holds no separator, NUL or drive to one that
// Windows creates exactly as written.
func windowsName(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 8)
	// The trailing run of dots and spaces: Win32 strips it, so ".. " would
	// become "..", and "x." would be "x".
	end := len(strings.TrimRight(name, ". "))
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case i >= end && r == '.':
			b.WriteRune(fullWidthDot)
		case i >= end && r == ' ':
			b.WriteRune(spaceSymbol)
		case r == utf8.RuneError && size == 1:
			// A byte that is not UTF-8 (a Latin-1 name from Linux) has no
			// UTF-16 form: Windows would get U+FFFD, silently and for every
			// such byte alike. "%E9" keeps it readable and distinct.
			fmt.Fprintf(&b, "%%%02X", name[i])
		case r < 0x20 && size == 1:
			b.WriteRune(0x2400 + r) // the control picture: ␁ for 0x01
		case windowsLookAlikes[r] != 0:
			b.WriteRune(windowsLookAlikes[r])
		default:
			b.WriteString(name[i : i+size])
		}
		i += size
	}
	out := b.String()
	if isWindowsDevice(out) {
		// "nul.txt" becomes "nul_.txt": the device name is no longer the
		// part before the first dot.
		stem := strings.IndexByte(out, '.')
		if stem < 0 {
			stem = len(out)
		}
		out = out[:stem] + "_" + out[stem:]
	}
	return fitWindowsName(out)
}

// maxWindowsName is NTFS's limit on a name, in UTF-16 code units.
const maxWindowsName = 255

// fitWindowsName shortens a name longer than NTFS takes, which a mapping
// can make of a name that fitted on Linux (255 bytes): the stem is cut and
// "~" and 8 hex digits of the whole name's hash keep shortened names
// apart; the extension, when short, is kept so the file still opens with
// its program. A name that fits is returned as it is, so the mapping
// stays stable.
func fitWindowsName(name string) string {
	if len(utf16.Encode([]rune(name))) <= maxWindowsName {
		return name
	}
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 16 {
		ext = name[i:]
	}
	sum := sha256.Sum256([]byte(name))
	tag := fmt.Sprintf("~%x", sum[:4])
	budget := maxWindowsName - len(utf16.Encode([]rune(tag+ext)))
	var stem strings.Builder
	units := 0
	for _, r := range strings.TrimSuffix(name, ext) {
		n := utf16.RuneLen(r)
		if units+n > budget {
			break
		}
		stem.WriteRune(r)
		units += n
	}
	// The cut may leave a trailing dot or space, which Win32 strips.
	return strings.TrimRight(stem.String(), ". ") + tag + ext
}

// windowsDevices are the names Windows reads as devices, whatever follows
// the first dot and whatever case they are in.
var windowsDevices = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true,
	"COM¹": true, "COM²": true, "COM³": true, "LPT¹": true, "LPT²": true, "LPT³": true,
}

func init() {
	for _, d := range "0123456789" {
		windowsDevices["COM"+string(d)] = true
		windowsDevices["LPT"+string(d)] = true
	}
}

// isWindowsDevice reports whether Windows reads name as a device: the part
// before the first dot, without trailing spaces, is a device name.
func isWindowsDevice(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	return windowsDevices[strings.ToUpper(strings.TrimRight(stem, " "))]
}
