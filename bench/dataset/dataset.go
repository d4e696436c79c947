// Package dataset generates the deterministic file trees the benchmark backs
// up, changes a fixed share of their files, and digests trees so a restore
// can be checked against its source.
//
// Everything derives from a seed: the same seed and scale give byte-for-byte
// the same tree on any machine, so figures from different runs and machines
// describe the same data.
package dataset

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// Kind names a dataset.
type Kind string

const (
	// Source is like a source tree: about 50,000 small text-like files,
	// about 1 GiB, in nested folders, with a few duplicate files.
	Source Kind = "source"
	// Large is a handful of big files, about 2 GiB: half random bytes (like
	// media or archives, incompressible) and half logs (compressible).
	Large Kind = "large"
)

// Full-scale sizes; Generate multiplies them by its scale.
const (
	SourceFiles = 50_000
	SourceBytes = 1 << 30
	LargeBytes  = 2 << 30
)

// Stats describes a generated tree.
type Stats struct {
	Files int
	Dirs  int // not counting the root
	Bytes int64
}

// Generate writes the dataset kind into root, which must not exist or be
// empty. scale shrinks (or grows) the byte total and, for Source, the file
// count; 1.0 is the full size.
func Generate(root string, kind Kind, seed uint64, scale float64) (Stats, error) {
	if scale <= 0 || math.IsNaN(scale) || math.IsInf(scale, 0) {
		return Stats{}, fmt.Errorf("scale %v: must be a positive number", scale)
	}
	if err := emptyDir(root); err != nil {
		return Stats{}, err
	}
	switch kind {
	case Source:
		return genSource(root, seed, scale)
	case Large:
		return genLarge(root, seed, scale)
	case Office:
		return genOffice(root, seed, scale)
	}
	return Stats{}, fmt.Errorf("unknown dataset %q (want %q, %q or %q)", kind, Source, Large, Office)
}

func emptyDir(root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("create dataset folder: %w", err)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("read dataset folder: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("dataset folder %s is not empty: generating into it would mix trees", root)
	}
	return nil
}

var extensions = []string{".go", ".go", ".go", ".c", ".h", ".py", ".js", ".ts", ".md", ".txt", ".json", ".yaml", ".html", ".css", ".sh"}

type fileSpec struct {
	path    string
	size    int
	content uint64 // seeds the content; duplicates share their original's
}

func genSource(root string, seed uint64, scale float64) (Stats, error) {
	n := max(1, int(math.Round(SourceFiles*scale)))
	total := float64(SourceBytes) * scale
	r := rand.New(rand.NewPCG(seed, 1))
	v := newVocab(seed)
	word := func() string { return v.words[len(keywords)+r.IntN(len(v.words)-len(keywords))] }

	// A random recursive tree of folders, about 25 files each, capped at
	// depth 8 so paths stay far below every OS's limit.
	nd := max(1, n/25)
	dirs, depth := make([]string, nd), make([]int, nd)
	for i := 1; i < nd; i++ {
		p := r.IntN(i)
		for depth[p] >= 8 {
			p = r.IntN(i)
		}
		dirs[i] = filepath.Join(dirs[p], fmt.Sprintf("%s_%d", word(), i))
		depth[i] = depth[p] + 1
		if err := os.MkdirAll(filepath.Join(root, dirs[i]), 0o755); err != nil {
			return Stats{}, fmt.Errorf("create folder: %w", err)
		}
	}

	// Log-normal sizes (sigma 1.6: most files a few KiB, a long tail of
	// hundreds of KiB and a few MiB), scaled so they add up to the total.
	// About 1% are empty and 2% duplicate an earlier file, as vendored
	// copies and licence files do in real trees.
	raw := make([]float64, n)
	var sum float64
	for i := range raw {
		raw[i] = math.Exp(1.6 * r.NormFloat64())
		sum += raw[i]
	}
	files := make([]fileSpec, n)
	var st Stats
	st.Dirs = nd - 1
	for i := range files {
		f := &files[i]
		f.path = filepath.Join(dirs[r.IntN(nd)], fmt.Sprintf("%s_%d%s", word(), i, extensions[r.IntN(len(extensions))]))
		f.size = min(int(raw[i]*total/sum), 16<<20)
		f.content = uint64(i)
		switch x := r.IntN(100); {
		case x == 0:
			f.size = 0
		case x <= 2 && i > 0:
			o := files[r.IntN(i)]
			f.size, f.content = o.size, o.content
		}
		st.Bytes += int64(f.size)
	}
	st.Files = n

	err := parallel(len(files), func(i int, buf *[]byte) error {
		f := files[i]
		fr := rand.New(rand.NewPCG(seed, 1<<32|f.content))
		*buf = v.appendText(*buf, f.size, fr, false)
		if err := os.WriteFile(filepath.Join(root, f.path), *buf, 0o644); err != nil {
			return fmt.Errorf("write dataset file: %w", err)
		}
		return nil
	})
	return st, err
}

func genLarge(root string, seed uint64, scale float64) (Stats, error) {
	half := float64(LargeBytes) * scale / 2
	weights := []float64{0.4, 0.3, 0.2, 0.1}
	v := newVocab(seed)
	for _, d := range []string{"media", "logs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return Stats{}, fmt.Errorf("create folder: %w", err)
		}
	}
	type spec struct {
		path   string
		size   int64
		random bool
	}
	var files []spec
	st := Stats{Dirs: 2}
	for i, w := range weights {
		size := int64(half * w)
		files = append(files,
			spec{filepath.Join("media", fmt.Sprintf("blob-%d.bin", i+1)), size, true},
			spec{filepath.Join("logs", fmt.Sprintf("app-%d.log", i+1)), size, false})
		st.Files += 2
		st.Bytes += 2 * size
	}
	err := parallel(len(files), func(i int, buf *[]byte) error {
		f := files[i]
		out, err := os.Create(filepath.Join(root, f.path))
		if err != nil {
			return fmt.Errorf("create dataset file: %w", err)
		}
		var key [32]byte
		key[0], key[1] = byte(i), byte(i>>8)
		for j := range 8 {
			key[8+j] = byte(seed >> (8 * j))
		}
		cc := rand.NewChaCha8(key)
		tr := rand.New(rand.NewPCG(seed, 2<<32|uint64(i)))
		const chunk = 1 << 20
		for left := f.size; left > 0; {
			n := int(min(left, chunk))
			if f.random {
				if cap(*buf) < n {
					*buf = make([]byte, n)
				}
				*buf = (*buf)[:n]
				_, _ = cc.Read(*buf) // ChaCha8.Read never fails
			} else {
				*buf = v.appendText(*buf, n, tr, true)
			}
			if _, err := out.Write(*buf); err != nil {
				out.Close()
				return fmt.Errorf("write dataset file: %w", err)
			}
			left -= int64(n)
		}
		if err := out.Close(); err != nil {
			return fmt.Errorf("write dataset file: %w", err)
		}
		return nil
	})
	return st, err
}

// parallel runs fn for 0..n-1 on every core, each worker with its own
// reusable buffer, and returns the first error.
func parallel(n int, fn func(i int, buf *[]byte) error) error {
	var (
		mu   sync.Mutex
		next int
		errs []error
		wg   sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var buf []byte
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= n || len(errs) > 0
				mu.Unlock()
				if stop {
					return
				}
				if err := fn(i, &buf); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
