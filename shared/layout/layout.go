// Package layout names the objects of a Coffer repository. The agent that
// writes them, the pack reference lists and the control plane that purges
// by them all learn from here where each object lives, so the three can
// never disagree about a name. docs/repository-format.md says what each
// object holds.
//
// Every ID in a name is 64 lower-case hex digits: a SHA-256 for the
// content-addressed objects, and a point's ID for refs/.
package layout

import "strings"

// The repository's config object and the prefixes of its other objects.
const (
	Config       = "config"
	KeysPrefix   = "keys/"
	DataPrefix   = "data/"
	IndexPrefix  = "index/"
	PointsPrefix = "points/"
	RefsPrefix   = "refs/"
)

// IDLen is the length of every ID in an object name.
const IDLen = 64

// ValidID accepts 64 lower-case hex digits. Only such IDs are ever put
// into a name, so a name built from untrusted input cannot leave its prefix.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Key is the name of a key file.
func Key(id string) string { return KeysPrefix + id }

// Index is the name of an index file.
func Index(id string) string { return IndexPrefix + id }

// Point is the name of a recovery point.
func Point(id string) string { return PointsPrefix + id }

// Refs is the name of a point's pack reference list.
func Refs(point string) string { return RefsPrefix + point }

// Pack is the name of a pack: data/<first two digits>/<id>. The fan-out
// keeps a local repository's folders small. id must be a valid ID.
func Pack(id string) string { return DataPrefix + id[:2] + "/" + id }

// ParsePack returns the ID of a pack name, and whether name is exactly one
// (a valid ID, under the folder its first two digits name).
func ParsePack(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, DataPrefix)
	if !ok || len(rest) != 3+IDLen || rest[2] != '/' {
		return "", false
	}
	id := rest[3:]
	if !ValidID(id) || rest[:2] != id[:2] {
		return "", false
	}
	return id, true
}

// ParseKey returns the ID of a key file's name, and whether name is one.
func ParseKey(name string) (string, bool) { return parse(KeysPrefix, name) }

// ParseIndex returns the ID of an index file's name, and whether name is one.
func ParseIndex(name string) (string, bool) { return parse(IndexPrefix, name) }

// ParsePoint returns the ID of a point's name, and whether name is one.
func ParsePoint(name string) (string, bool) { return parse(PointsPrefix, name) }

// ParseRefs returns the point ID of a pack reference list's name, and
// whether name is one.
func ParseRefs(name string) (string, bool) { return parse(RefsPrefix, name) }

func parse(prefix, name string) (string, bool) {
	id, ok := strings.CutPrefix(name, prefix)
	if !ok || !ValidID(id) {
		return "", false
	}
	return id, true
}
