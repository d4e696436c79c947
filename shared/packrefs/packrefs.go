// Package packrefs is the plaintext list of pack objects a recovery point
// needs, stored beside the encrypted point as refs/<point ID>. The control
// plane reads it without any key: a pack that no remaining point's list
// names can be deleted. The agent writes it; nothing else about the point
// is revealed.
package packrefs

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/coffer-backup/coffer/shared/layout"
)

// Version of the format.
const Version = 1

// MaxSize bounds what a reader accepts (about 1.3 million packs, some 40 TiB).
const MaxSize = 96 << 20

// Refs names the packs one point needs.
type Refs struct {
	Version int      `json:"version"`
	Point   string   `json:"point"` // the point's ID, as in layout.Point
	Packs   []string `json:"packs"` // pack IDs, as in layout.Pack, sorted, unique
}

// New builds a sorted, deduplicated list.
func New(point string, packs []string) *Refs {
	p := slices.Clone(packs)
	slices.Sort(p)
	return &Refs{Version: Version, Point: point, Packs: slices.Compact(p)}
}

// Name is the object name of a point's list.
func Name(point string) string { return layout.Refs(point) }

// PackName is the object name of a pack.
func PackName(pack string) string { return layout.Pack(pack) }

// Encode renders the list as JSON.
func (r *Refs) Encode() ([]byte, error) { return json.Marshal(r) }

// Decode parses and validates a list.
func Decode(b []byte) (*Refs, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("pack reference list is %d bytes, more than the %d allowed", len(b), MaxSize)
	}
	var r Refs
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode pack reference list: %w", err)
	}
	if r.Version != Version {
		return nil, fmt.Errorf("pack reference list has version %d; this build reads version %d", r.Version, Version)
	}
	if !ValidID(r.Point) {
		return nil, fmt.Errorf("pack reference list names an invalid point ID %q", r.Point)
	}
	for i, p := range r.Packs {
		if !ValidID(p) {
			return nil, fmt.Errorf("pack reference list names an invalid pack ID %q", p)
		}
		if i > 0 && r.Packs[i-1] >= p {
			return nil, fmt.Errorf("pack reference list is not sorted and unique at %q", p)
		}
	}
	return &r, nil
}

// ValidID accepts 64 lower-case hex digits, the form of every point and
// pack ID.
func ValidID(s string) bool { return layout.ValidID(s) }
