package dataset

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tests run at a scale of a few hundred KiB so they stay in the unit suite.
const tiny = 0.001

func gen(t *testing.T, kind Kind, seed uint64, scale float64) (string, Stats) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "d")
	st, err := Generate(dir, kind, seed, scale)
	if err != nil {
		t.Fatalf("generate %s: %v", kind, err)
	}
	return dir, st
}

func digest(t *testing.T, dir string) Digest {
	t.Helper()
	d, err := DigestTree(dir)
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return d
}

func TestSameSeedSameTree(t *testing.T) {
	for _, k := range []Kind{Source, Large} {
		a, sa := gen(t, k, 7, tiny)
		b, sb := gen(t, k, 7, tiny)
		da, db := digest(t, a), digest(t, b)
		if !da.Equal(db) {
			t.Errorf("%s: same seed gave different trees: %v vs %v", k, da, db)
		}
		if sa != sb || da.Files != sa.Files || da.Bytes != sa.Bytes || da.Dirs != sa.Dirs {
			t.Errorf("%s: stats %+v / %+v disagree with the tree %v", k, sa, sb, da)
		}
		c, _ := gen(t, k, 8, tiny)
		if digest(t, c).Equal(da) {
			t.Errorf("%s: seeds 7 and 8 gave the same tree", k)
		}
	}
}

func TestScaleShrinksTheTree(t *testing.T) {
	_, small := gen(t, Source, 1, tiny)
	_, big := gen(t, Source, 1, 4*tiny)
	if small.Files != 50 || big.Files != 200 {
		t.Errorf("files: %d at %v, %d at %v; want 50 and 200", small.Files, tiny, big.Files, 4*tiny)
	}
	// Sizes are normalised to the target total, so only the rounding and
	// the duplicates/empties make it drift.
	for _, c := range []struct {
		st   Stats
		want float64
	}{{small, SourceBytes * tiny}, {big, SourceBytes * 4 * tiny}} {
		if r := float64(c.st.Bytes) / c.want; r < 0.8 || r > 1.2 {
			t.Errorf("source bytes %d, want about %.0f", c.st.Bytes, c.want)
		}
	}
	_, large := gen(t, Large, 1, tiny)
	if r := float64(large.Bytes) / (LargeBytes * tiny); large.Files != 8 || r < 0.99 || r > 1.01 {
		t.Errorf("large: %+v, want 8 files and about %.0f bytes", large, LargeBytes*tiny)
	}
}

func TestSourceTreeIsNestedAndCompressible(t *testing.T) {
	dir, st := gen(t, Source, 1, 0.004)
	if st.Dirs < 5 {
		t.Errorf("only %d folders for %d files", st.Dirs, st.Files)
	}
	deepest := 0
	var all bytes.Buffer
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		deepest = max(deepest, strings.Count(rel, string(filepath.Separator)))
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			all.Write(b)
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if deepest < 2 {
		t.Errorf("deepest file is %d folders down, want a nested tree", deepest)
	}
	// Text with a Zipf vocabulary compresses like source code does: 2.5x
	// or more with DEFLATE. Random bytes would not compress at all.
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.DefaultCompression)
	w.Write(all.Bytes())
	w.Close()
	if r := float64(all.Len()) / float64(z.Len()); r < 2.5 {
		t.Errorf("source content compresses %.2fx, want at least 2.5x", r)
	}
}

func TestChangeIsDeterministicAndTouchesOnePercent(t *testing.T) {
	a, st := gen(t, Source, 3, tiny)
	b, _ := gen(t, Source, 3, tiny)
	before := digest(t, a)
	ca, err := Change(a, 3, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := Change(b, 3, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if want := (st.Files + 99) / 100; len(ca.Files) != want {
		t.Errorf("changed %d files of %d, want %d", len(ca.Files), st.Files, want)
	}
	da, db := digest(t, a), digest(t, b)
	if !da.Equal(db) || ca.Bytes != cb.Bytes {
		t.Errorf("same seed changed differently: %v vs %v", da, db)
	}
	if da.Equal(before) || da.Files != before.Files || da.Bytes <= before.Bytes {
		t.Errorf("after change %v, before %v: want same files, more bytes", da, before)
	}

	l, _ := gen(t, Large, 3, tiny)
	cl, err := Change(l, 3, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Files) != 1 {
		t.Errorf("large: changed %d files, want 1 (at least one always changes)", len(cl.Files))
	}
}

func TestGenerateRefusesNonEmptyFolder(t *testing.T) {
	dir, _ := gen(t, Source, 1, tiny)
	if _, err := Generate(dir, Source, 1, tiny); err == nil {
		t.Fatal("generating into a non-empty folder succeeded")
	}
	if _, err := Generate(t.TempDir(), Source, 1, 0); err == nil {
		t.Fatal("scale 0 accepted")
	}
}

func TestEncryptOverwritesAShareOfFilesWithRandomBytesOfTheirSize(t *testing.T) {
	for _, ext := range []string{"", ".locked"} {
		root := t.TempDir()
		for i := range 10 {
			if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d.txt", i)), bytes.Repeat([]byte("text "), 100*(i+1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := Encrypt(root, 1, 0.2, ext)
		if err != nil || len(got) != 2 {
			t.Fatalf("ext %q: encrypted %v, %v; want 2 files", ext, got, err)
		}
		for _, rel := range got {
			orig := filepath.Join(root, rel)
			b, err := os.ReadFile(orig + ext)
			if err != nil {
				t.Fatal(err)
			}
			var i int
			fmt.Sscanf(filepath.Base(rel), "f%d.txt", &i)
			if len(b) != 500*(i+1) || bytes.Contains(b, []byte("text ")) {
				t.Errorf("ext %q: %s holds %d bytes, still text: %v", ext, rel, len(b), bytes.Contains(b, []byte("text ")))
			}
			if _, err := os.Stat(orig); (ext != "") != os.IsNotExist(err) {
				t.Errorf("ext %q: original %s: %v", ext, rel, err)
			}
		}
	}
}
