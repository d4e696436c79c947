package chunker

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

var (
	seedA = [32]byte{1}
	seedB = [32]byte{2}
	// smallParams make size statistics meaningful on little data.
	smallParams = Params{Min: 2 << 10, Avg: 8 << 10, Max: 64 << 10}
)

// randomData returns n deterministic pseudo-random bytes.
func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// split chunks r completely with c.
func split(t testing.TB, c *Chunker, r io.Reader) [][]byte {
	t.Helper()
	c.Reset(r)
	var chunks [][]byte
	for {
		chunk, err := c.Next(nil)
		if err == io.EOF {
			return chunks
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(chunk) == 0 {
			t.Fatal("empty chunk")
		}
		chunks = append(chunks, chunk)
	}
}

func sizes(chunks [][]byte) []int {
	s := make([]int, len(chunks))
	for i, c := range chunks {
		s[i] = len(c)
	}
	return s
}

// checkChunks verifies reassembly and the size bounds.
func checkChunks(t *testing.T, p Params, data []byte, chunks [][]byte) {
	t.Helper()
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
		t.Fatalf("concatenated chunks (%d bytes) differ from input (%d bytes)", len(got), len(data))
	}
	for i, c := range chunks {
		if len(c) > p.Max || (len(c) < p.Min && i != len(chunks)-1) {
			t.Fatalf("chunk %d of %d has size %d outside [%d, %d]", i, len(chunks), len(c), p.Min, p.Max)
		}
	}
}

func TestChunkerSplits(t *testing.T) {
	zeros := make([]byte, 20<<20)
	for _, tc := range []struct {
		name string
		p    Params
		data []byte
	}{
		{"empty", DefaultParams, nil},
		{"one byte", DefaultParams, []byte{7}},
		{"shorter than min", DefaultParams, randomData(DefaultParams.Min-1, 1)},
		{"exactly min", DefaultParams, randomData(DefaultParams.Min, 2)},
		{"random 24MiB", DefaultParams, randomData(24<<20, 3)},
		{"zeros hit max", DefaultParams, zeros},
		{"small params random", smallParams, randomData(4<<20, 4)},
		{"small params zeros", smallParams, zeros[:1<<20]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunks := split(t, New(seedA, tc.p), bytes.NewReader(tc.data))
			checkChunks(t, tc.p, tc.data, chunks)
			switch {
			case len(tc.data) == 0 && len(chunks) != 0:
				t.Fatalf("empty input gave %d chunks", len(chunks))
			case len(tc.data) > 0 && len(tc.data) <= tc.p.Min && len(chunks) != 1:
				t.Fatalf("input of %d bytes gave %d chunks, want 1", len(tc.data), len(chunks))
			}
		})
	}
}

func TestZerosCutAtMax(t *testing.T) {
	// Constant input never matches a mask (with overwhelming probability),
	// so every chunk but the last is exactly Max.
	data := make([]byte, 20<<20)
	chunks := split(t, New(seedA, DefaultParams), bytes.NewReader(data))
	for i, c := range chunks[:len(chunks)-1] {
		if len(c) != DefaultParams.Max {
			t.Fatalf("chunk %d: %d bytes, want Max", i, len(c))
		}
	}
}

func TestDeterministicAndSeeded(t *testing.T) {
	data := randomData(32<<20, 5)
	a := sizes(split(t, New(seedA, DefaultParams), bytes.NewReader(data)))
	a2 := sizes(split(t, New(seedA, DefaultParams), bytes.NewReader(data)))
	b := sizes(split(t, New(seedB, DefaultParams), bytes.NewReader(data)))
	if !equalInts(a, a2) {
		t.Fatal("same seed gave different boundaries")
	}
	if equalInts(a, b) {
		t.Fatal("different seeds gave the same boundaries")
	}
}

func TestShiftResistance(t *testing.T) {
	data := randomData(64<<20, 6)
	c := New(seedA, DefaultParams)
	orig := split(t, c, bytes.NewReader(data))

	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"insert 1 byte at 100", func(d []byte) []byte { return bytes.Join([][]byte{d[:100], {0x42}, d[100:]}, nil) }},
		{"insert 4 KiB at 1000", func(d []byte) []byte { return bytes.Join([][]byte{d[:1000], randomData(4096, 7), d[1000:]}, nil) }},
		{"delete 10 bytes at 5000", func(d []byte) []byte { return bytes.Join([][]byte{d[:5000], d[5010:]}, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edited := split(t, c, bytes.NewReader(tc.edit(data)))
			seen := make(map[string]bool, len(orig))
			for _, ch := range orig {
				seen[string(ch)] = true
			}
			changed := 0
			for _, ch := range edited {
				if !seen[string(ch)] {
					changed++
				}
			}
			if changed < 1 || changed > 2 {
				t.Fatalf("%d of %d chunks changed, want 1-2", changed, len(edited))
			}
		})
	}
}

func TestAverageSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
		n    int
	}{
		{"default params 64MiB", DefaultParams, 64 << 20},
		{"small params 16MiB", smallParams, 16 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomData(tc.n, 8)
			chunks := split(t, New(seedA, tc.p), bytes.NewReader(data))
			// Leave out the last chunk: it is cut by the end of the input.
			avg := float64(len(data)-len(chunks[len(chunks)-1])) / float64(len(chunks)-1)
			t.Logf("%d chunks, mean %.0f bytes (target %d)", len(chunks), avg, tc.p.Avg)
			if avg < 0.75*float64(tc.p.Avg) || avg > 1.25*float64(tc.p.Avg) {
				t.Fatalf("mean chunk size %.0f outside ±25%% of %d", avg, tc.p.Avg)
			}
		})
	}
}

func TestShortReads(t *testing.T) {
	data := randomData(3<<20, 9)
	c := New(seedA, smallParams)
	want := sizes(split(t, c, bytes.NewReader(data)))
	for _, tc := range []struct {
		name string
		r    io.Reader
	}{
		{"OneByteReader", iotest.OneByteReader(bytes.NewReader(data))},
		{"HalfReader", iotest.HalfReader(bytes.NewReader(data))},
		{"DataErrReader", iotest.DataErrReader(bytes.NewReader(data))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := split(t, c, tc.r)
			checkChunks(t, smallParams, data, got)
			if !equalInts(sizes(got), want) {
				t.Fatal("short reads changed the boundaries")
			}
		})
	}
}

func TestReadErrorWrapped(t *testing.T) {
	boom := errors.New("disk on fire")
	c := New(seedA, smallParams)
	c.Reset(io.MultiReader(bytes.NewReader(randomData(3*readSize, 10)), iotest.ErrReader(boom)))
	var err error
	for err == nil {
		_, err = c.Next(nil)
	}
	if !errors.Is(err, boom) || err == boom {
		t.Fatalf("err = %v, want wrapped %v", err, boom)
	}
	if _, err2 := c.Next(nil); !errors.Is(err2, boom) {
		t.Fatalf("error not sticky: %v", err2)
	}
	// Reset clears the error.
	c.Reset(bytes.NewReader([]byte("ok")))
	if chunk, err := c.Next(nil); err != nil || string(chunk) != "ok" {
		t.Fatalf("after Reset: %q, %v", chunk, err)
	}
}

func TestResetReuseAndBuf(t *testing.T) {
	c := New(seedA, smallParams)
	files := [][]byte{randomData(100, 11), nil, randomData(200<<10, 12), []byte("tail")}
	buf := make([]byte, 0, 16)
	for i, f := range files {
		c.Reset(bytes.NewReader(f))
		var got []byte
		for {
			chunk, err := c.Next(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, chunk...)
			buf = chunk // reuse the grown buffer
		}
		if !bytes.Equal(got, f) {
			t.Fatalf("file %d: mismatch after Reset", i)
		}
	}
	// Next before any Reset is just EOF.
	if _, err := New(seedA, smallParams).Next(nil); err != io.EOF {
		t.Fatalf("Next without Reset: %v", err)
	}
}

func TestParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		p  Params
		ok bool
	}{
		{DefaultParams, true},
		{smallParams, true},
		{Params{64, 128, 256}, true},
		{Params{}, false},
		{Params{63, 128, 256}, false},
		{Params{1 << 10, 1 << 10, 1 << 20}, false},
		{Params{1 << 10, 1 << 20, 1 << 20}, false},
		{Params{1 << 20, 1 << 10, 1 << 30}, false},
		{Params{1 << 10, 1 << 20, 1<<30 + 1}, false},
		{Params{-1, 0, 1}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
	// Invalid params fall back to the defaults rather than misbehaving.
	c := New(seedA, Params{})
	if c.min != DefaultParams.Min || c.max != DefaultParams.Max {
		t.Fatal("New did not fall back to DefaultParams")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// refCut is the FastCDC cut-point function written as in the paper, over a
// whole slice, as an oracle for the streaming implementation.
func refCut(c *Chunker, src []byte) int {
	n := len(src)
	if n <= c.min {
		return n
	}
	n = min(n, c.max)
	normal := min(c.normal, n)
	var fp uint64
	i := c.min
	for ; i < normal; i++ {
		fp = fp<<1 + c.gear[src[i]]
		if fp&c.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		fp = fp<<1 + c.gear[src[i]]
		if fp&c.maskL == 0 {
			return i + 1
		}
	}
	return n
}

func TestMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
		data []byte
	}{
		{"default random", DefaultParams, randomData(40<<20, 13)},
		{"default zeros", DefaultParams, make([]byte, 20<<20)},
		{"small random", smallParams, randomData(8<<20, 14)},
		{"min==normal", Params{Min: 7 << 10, Avg: 8 << 10, Max: 9 << 10}, randomData(4<<20, 15)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(seedB, tc.p)
			var want []int
			for rest := tc.data; len(rest) > 0; {
				n := refCut(c, rest)
				want = append(want, n)
				rest = rest[n:]
			}
			got := sizes(split(t, c, bytes.NewReader(tc.data)))
			if !equalInts(got, want) {
				t.Fatalf("streaming chunker gave %d chunks, reference %d; first sizes %v vs %v",
					len(got), len(want), got[:min(5, len(got))], want[:min(5, len(want))])
			}
		})
	}
}

// FuzzChunker checks the streaming chunker against the whole-slice
// reference for arbitrary data, read in arbitrary-sized pieces.
func FuzzChunker(f *testing.F) {
	f.Add([]byte("hello"), uint8(0))
	f.Add(randomData(5000, 16), uint8(3))
	f.Add(make([]byte, 3000), uint8(1))
	p := Params{Min: 64, Avg: 256, Max: 1024}
	c := New(seedA, p)
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		var r io.Reader = bytes.NewReader(data)
		switch mode % 3 {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		}
		got := split(t, c, r)
		var want []int
		for rest := data; len(rest) > 0; {
			n := refCut(c, rest)
			want = append(want, n)
			rest = rest[n:]
		}
		if !equalInts(sizes(got), want) {
			t.Fatalf("sizes %v, reference %v", sizes(got), want)
		}
		if !bytes.Equal(bytes.Join(got, nil), data) {
			t.Fatal("chunks do not reassemble the input")
		}
	})
}
