package dataset

import (
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
)

// Changed reports what Change did.
type Changed struct {
	Files []string // relative paths, sorted
	Bytes int64    // bytes overwritten plus bytes appended
}

// Change modifies fraction of root's regular files (at least one), chosen
// from the seed: in each it overwrites up to 512 bytes at a seeded offset
// and appends a few KiB. Overwriting in the middle exercises a tool's
// chunking (only the chunks around the edit should be new); appending also
// changes the size, so no tool can miss the change through a coarse mtime.
func Change(root string, seed uint64, fraction float64) (Changed, error) {
	if fraction <= 0 || fraction > 1 {
		return Changed{}, fmt.Errorf("fraction %v: must be in (0, 1]", fraction)
	}
	var all []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			all = append(all, rel)
		}
		return nil
	})
	if err != nil {
		return Changed{}, fmt.Errorf("list files to change: %w", err)
	}
	if len(all) == 0 {
		return Changed{}, fmt.Errorf("no files to change in %s", root)
	}
	slices.Sort(all) // WalkDir's order is lexical per folder; make it global
	r := rand.New(rand.NewPCG(seed, 3))
	n := max(1, int(math.Ceil(fraction*float64(len(all)))))
	pick := r.Perm(len(all))[:n]
	slices.Sort(pick)

	v := newVocab(seed)
	var ch Changed
	var buf []byte
	for _, i := range pick {
		rel := all[i]
		f, err := os.OpenFile(filepath.Join(root, rel), os.O_RDWR, 0)
		if err != nil {
			return ch, fmt.Errorf("open file to change: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return ch, fmt.Errorf("stat file to change: %w", err)
		}
		if size := st.Size(); size > 0 {
			l := min(size, 512)
			off := r.Int64N(size - l + 1)
			buf = v.appendText(buf, int(l), r, false)
			if _, err := f.WriteAt(buf, off); err != nil {
				f.Close()
				return ch, fmt.Errorf("overwrite %s: %w", rel, err)
			}
			ch.Bytes += l
			buf = v.appendText(buf, 256+r.IntN(4096), r, false)
			if _, err := f.WriteAt(buf, size); err != nil {
				f.Close()
				return ch, fmt.Errorf("append to %s: %w", rel, err)
			}
		} else {
			buf = v.appendText(buf, 256+r.IntN(4096), r, false)
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return ch, fmt.Errorf("append to %s: %w", rel, err)
			}
		}
		ch.Bytes += int64(len(buf))
		if err := f.Close(); err != nil {
			return ch, fmt.Errorf("close changed %s: %w", rel, err)
		}
		ch.Files = append(ch.Files, rel)
	}
	return ch, nil
}
