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

// Encrypt does to root what ransomware does: it overwrites fraction of its
// regular files (at least one, chosen from the seed) with random bytes of
// the same size, as a stream cipher's output is. With ext set, each one is
// written under its name plus ext ("report.docx.locked") and the original
// is removed, as most ransomware renames what it encrypted. It returns the
// paths it encrypted, relative to root, sorted.
func Encrypt(root string, seed uint64, fraction float64, ext string) ([]string, error) {
	if fraction <= 0 || fraction > 1 {
		return nil, fmt.Errorf("fraction %v: must be in (0, 1]", fraction)
	}
	var all []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			all = append(all, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list files to encrypt: %w", err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no files to encrypt in %s", root)
	}
	slices.Sort(all)
	r := rand.New(rand.NewPCG(seed, 4))
	n := max(1, int(math.Ceil(fraction*float64(len(all)))))
	pick := r.Perm(len(all))[:n]
	slices.Sort(pick)
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	cc := rand.NewChaCha8(key)
	buf := make([]byte, 1<<20)
	var done []string
	for _, i := range pick {
		p := all[i]
		fi, err := os.Stat(p)
		if err != nil {
			return done, fmt.Errorf("stat file to encrypt: %w", err)
		}
		out := p + ext
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return done, fmt.Errorf("open file to encrypt: %w", err)
		}
		for left := fi.Size(); left > 0; {
			b := buf[:min(left, int64(len(buf)))]
			_, _ = cc.Read(b) // ChaCha8.Read never fails
			if _, err := f.Write(b); err != nil {
				f.Close()
				return done, fmt.Errorf("encrypt %s: %w", p, err)
			}
			left -= int64(len(b))
		}
		if err := f.Close(); err != nil {
			return done, fmt.Errorf("close encrypted %s: %w", p, err)
		}
		if ext != "" {
			if err := os.Remove(p); err != nil {
				return done, fmt.Errorf("remove the original of %s: %w", p, err)
			}
		}
		rel, _ := filepath.Rel(root, p)
		done = append(done, rel)
	}
	return done, nil
}
