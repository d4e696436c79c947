// Package packrefs is the plaintext list of pack objects a recovery point
// needs, stored beside the encrypted point as refs/<point ID>. The control
// plane reads it without any key: a pack that no remaining point's list
// names can be deleted. The agent writes it; nothing else about the point
// is revealed.
package packrefs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/coffer-backup/coffer/shared/layout"
)

// Version of the format.
const Version = 1

// MaxSize bounds what a reader accepts: 67 bytes a pack, so about 1.5
// million packs, which at the default 16 MiB a pack is some 23 TiB stored
// for one machine, beyond what a branch office backs up. Readers stream
// lists (DecodeStream), so the bound limits time and traffic, not memory.
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

// Decode parses and validates a list held in memory. It applies exactly
// DecodeStream's rules, so the agent's checker and the control plane agree
// on which lists are valid.
func Decode(b []byte) (*Refs, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrInvalid, len(b), MaxSize)
	}
	var packs []string
	h, err := DecodeStream(bytes.NewReader(b), "", func(id ID) error {
		packs = append(packs, id.String())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decode pack reference list: %w", err)
	}
	return &Refs{Version: h.Version, Point: h.Point, Packs: packs}, nil
}

// ValidID accepts 64 lower-case hex digits, the form of every point and
// pack ID.
func ValidID(s string) bool { return layout.ValidID(s) }
