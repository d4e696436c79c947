package dataset

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/zeebo/blake3"
)

// Digest summarises a tree's content: what a restore must reproduce.
type Digest struct {
	Files int
	Dirs  int // not counting the root
	Bytes int64
	Sum   [32]byte // over every path, kind, size and content, in path order
}

func (d Digest) String() string {
	return fmt.Sprintf("%d files, %d folders, %d bytes, blake3 %s", d.Files, d.Dirs, d.Bytes, hex.EncodeToString(d.Sum[:8]))
}

// Equal reports whether two trees hold the same paths and contents.
func (d Digest) Equal(o Digest) bool { return d == o }

// DigestTree hashes every regular file under root on all cores and
// combines the results in path order, so the digest does not depend on
// scheduling. Modes, owners and times are left out: tools restore them
// differently and the benchmark checks data, not metadata.
func DigestTree(root string) (Digest, error) {
	type entry struct {
		rel  string
		dir  bool
		size int64
		sum  [32]byte
	}
	var ents []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			ents = append(ents, entry{rel: filepath.ToSlash(rel), dir: true})
		case d.Type().IsRegular():
			ents = append(ents, entry{rel: filepath.ToSlash(rel)})
		default:
			return fmt.Errorf("%s: unexpected file type %v", p, d.Type())
		}
		return nil
	})
	if err != nil {
		return Digest{}, fmt.Errorf("walk %s: %w", root, err)
	}
	slices.SortFunc(ents, func(a, b entry) int {
		if a.rel < b.rel {
			return -1
		}
		if a.rel > b.rel {
			return 1
		}
		return 0
	})
	err = parallel(len(ents), func(i int, buf *[]byte) error {
		e := &ents[i]
		if e.dir {
			return nil
		}
		f, err := os.Open(filepath.Join(root, e.rel))
		if err != nil {
			return fmt.Errorf("digest: %w", err)
		}
		defer f.Close()
		if cap(*buf) < 1<<20 {
			*buf = make([]byte, 1<<20)
		}
		h := blake3.New()
		n, err := io.CopyBuffer(h, f, *buf)
		if err != nil {
			return fmt.Errorf("digest %s: %w", e.rel, err)
		}
		e.size = n
		h.Sum(e.sum[:0])
		return nil
	})
	if err != nil {
		return Digest{}, err
	}
	var d Digest
	h := blake3.New()
	var num [8]byte
	for _, e := range ents {
		h.WriteString(e.rel)
		h.Write([]byte{0})
		if e.dir {
			d.Dirs++
			h.Write([]byte{'d'})
			continue
		}
		d.Files++
		d.Bytes += e.size
		binary.LittleEndian.PutUint64(num[:], uint64(e.size))
		h.Write([]byte{'f'})
		h.Write(num[:])
		h.Write(e.sum[:])
	}
	h.Sum(d.Sum[:0])
	return d, nil
}
