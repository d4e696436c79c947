package compress

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// textBytes returns n bytes of log-like text: compressible, but not trivially.
func textBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	words := strings.Fields("backup restore chunk index snapshot azure blob container upload " +
		"failed retry ok level=info level=warn user=alice user=bob size= took ms the a of to")
	var sb strings.Builder
	for sb.Len() < n {
		fmt.Fprintf(&sb, "2025-01-%02d %s %s %d\n", r.IntN(28)+1, words[r.IntN(len(words))], words[r.IntN(len(words))], r.IntN(100000))
	}
	return []byte(sb.String()[:n])
}

// wordsBytes returns n bytes of words drawn evenly from a vocabulary of
// 5,000 random lower-case words: text with few repeats within a few KiB,
// whose letters still code in about 5 bits each.
func wordsBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	words := make([]string, 5000)
	for i := range words {
		w := make([]byte, 3+r.IntN(8))
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		words[i] = string(w)
	}
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			sb.WriteString(".\n")
		} else {
			sb.WriteByte(' ')
		}
	}
	return []byte(sb.String()[:n])
}

// TestVocabularyText: text without repeats in a small file or a sample
// still compresses, in every mode; it used to be stored as is.
func TestVocabularyText(t *testing.T) {
	for _, mode := range []Mode{Auto, Fastest, Default, Max} {
		for _, tc := range []struct {
			n   int
			max float64 // largest acceptable share of the input
		}{{4 << 10, 0.65}, {1 << 20, 0.45}} {
			src := wordsBytes(tc.n, 20)
			out, m := Compress(nil, src, mode)
			if m != Zstd || float64(len(out)) > tc.max*float64(len(src)) {
				t.Errorf("%v, %d bytes: %v, %d bytes stored; want zstd, at most %.0f%%", mode, tc.n, m, len(out), 100*tc.max)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	halfRandom := append(textBytes(300<<10, 3), randomBytes(300<<10, 4)...)
	for _, tc := range []struct {
		name string
		src  []byte
		want Method
	}{
		{"empty", nil, None},
		{"one byte", []byte{1}, None},
		{"short text", []byte("hello hello hello hello hello hello hello hello"), Zstd},
		{"text 1MiB", textBytes(1<<20, 1), Zstd},
		{"zeros 8MiB", make([]byte, 8<<20), Zstd},
		{"random 1MiB", randomBytes(1<<20, 2), None},
		{"random small", randomBytes(1000, 5), None},
		{"small text, no declared size", []byte(strings.Repeat("tiny ", 40)), Zstd},
		{"text then random", halfRandom, Zstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix")
			out, m := Compress(bytes.Clone(prefix), tc.src, Auto)
			if m != tc.want {
				t.Fatalf("method %v, want %v", m, tc.want)
			}
			if !bytes.HasPrefix(out, prefix) {
				t.Fatal("Compress did not append to dst")
			}
			payload := out[len(prefix):]
			if m == None && !bytes.Equal(payload, tc.src) {
				t.Fatal("None payload differs from input")
			}
			if m == Zstd && len(payload) > len(tc.src)-len(tc.src)/32 {
				t.Fatalf("kept zstd output of %d bytes for %d input bytes", len(payload), len(tc.src))
			}
			got, err := Decompress(bytes.Clone(prefix), payload, m, len(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append(bytes.Clone(prefix), tc.src...)) {
				t.Fatal("round trip mismatch")
			}
			if len(tc.src) > 0 {
				// Tiny zstd frames carry no declared size; overflowing the
				// limit is still refused, but as a decoding error.
				_, err := Decompress(nil, payload, m, len(tc.src)-1)
				if err == nil || (len(tc.src) >= 1024 && !errors.Is(err, ErrTooLarge)) {
					t.Fatalf("limit one below size: err = %v, want ErrTooLarge", err)
				}
			}
		})
	}
}

func TestDecompressErrors(t *testing.T) {
	text := textBytes(64<<10, 6)
	comp, m := Compress(nil, text, Auto)
	if m != Zstd {
		t.Fatal("text not compressed")
	}
	for _, tc := range []struct {
		name    string
		src     []byte
		m       Method
		max     int
		tooLong bool
	}{
		{"unknown method", text, Method(7), 1 << 20, false},
		{"negative limit", text, None, -1, false},
		{"garbage zstd", []byte("not zstd at all"), Zstd, 1 << 20, false},
		{"empty zstd", nil, Zstd, 1 << 20, false},
		{"truncated zstd", comp[:len(comp)/2], Zstd, 1 << 20, false},
		{"declared size over limit", comp, Zstd, len(text) - 1, true},
		{"stored over limit", text, None, len(text) - 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Decompress([]byte("dst"), tc.src, tc.m, tc.max)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrTooLarge) != tc.tooLong {
				t.Fatalf("err = %v, ErrTooLarge want %v", err, tc.tooLong)
			}
			if string(out) != "dst" {
				t.Fatalf("dst changed to %q", out)
			}
		})
	}
}

// TestBombRefused decompresses a frame without a declared size (as a
// hostile repository would craft it) that inflates 1 KiB to 256 MiB.
func TestBombRefused(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	var bomb bytes.Buffer
	enc.Reset(&bomb) // streaming: no frame content size in the header
	zeros := make([]byte, 1<<20)
	for range 256 {
		if _, err := enc.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(bomb.Bytes()); err != nil || h.HasFCS {
		t.Fatalf("test bomb declares its size (%v, %v)", h.HasFCS, err)
	}
	t.Logf("bomb: %d bytes", bomb.Len())

	const limit = 1 << 20
	_, err = Decompress(nil, bomb.Bytes(), Zstd, limit)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	for _, lim := range []int{0, 1000, limit, limit} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := Decompress(nil, bomb.Bytes(), Zstd, lim); err == nil {
			t.Fatalf("limit %d: bomb accepted", lim)
		}
		runtime.ReadMemStats(&after)
		allocated := after.TotalAlloc - before.TotalAlloc
		t.Logf("limit %d: refused after allocating %d bytes", lim, allocated)
		if allocated > uint64(lim)*5/2+noFCSFirstTry+256<<10 {
			t.Errorf("limit %d: refusing the bomb allocated %d bytes", lim, allocated)
		}
	}

	// A large dst capacity must not raise the limit.
	big := make([]byte, 0, 512<<20)
	if _, err := Decompress(big, bomb.Bytes(), Zstd, limit); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("with spare capacity: err = %v, want ErrTooLarge", err)
	}
	// Within the limit it decodes.
	out, err := Decompress(nil, bomb.Bytes(), Zstd, 256<<20)
	if err != nil || len(out) != 256<<20 {
		t.Fatalf("within limit: %d bytes, %v", len(out), err)
	}
}

func TestMethodString(t *testing.T) {
	for m, want := range map[Method]string{None: "none", Zstd: "zstd", 9: "Method(9)"} {
		if got := m.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", m, got, want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	src := textBytes(256<<10, 7)
	done := make(chan error)
	for g := range 8 {
		go func() {
			var err error
			for range 20 {
				c, m := Compress(nil, src[g:], Auto)
				var out []byte
				if out, err = Decompress(nil, c, m, len(src)); err == nil && !bytes.Equal(out, src[g:]) {
					err = errors.New("mismatch")
				}
				if err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzDecompress(f *testing.F) {
	c, _ := Compress(nil, textBytes(10<<10, 8), Auto)
	f.Add(c, uint8(Zstd), 20<<10)
	f.Add(c, uint8(Zstd), 100)
	f.Add([]byte("raw"), uint8(None), 10)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd}, uint8(Zstd), 1<<20)
	f.Fuzz(func(t *testing.T, src []byte, m uint8, maxSize int) {
		maxSize = min(maxSize, 4<<20) // keep the fuzzer's memory bounded
		out, err := Decompress(nil, src, Method(m), maxSize)
		if err == nil && len(out) > maxSize {
			t.Fatalf("%d bytes out, limit %d", len(out), maxSize)
		}
	})
}

func TestPrechecks(t *testing.T) {
	repeatedRandom := bytes.Repeat(randomBytes(4096, 9), sampleSize/4096)
	for _, tc := range []struct {
		name              string
		sample            []byte
		entropy, zsampled bool // want incompressible
	}{
		{"random", randomBytes(sampleSize, 10), true, true},
		{"text", textBytes(sampleSize, 11), false, false},
		{"zeros", make([]byte, sampleSize), false, false},
		// The entropy check is blind to repeats; Compress then stores the
		// chunk uncompressed, which is correct, just larger.
		{"repeated random", repeatedRandom, true, false},
	} {
		if got := entropyIncompressible(tc.sample); got != tc.entropy {
			t.Errorf("%s: entropyIncompressible = %v", tc.name, got)
		}
		if got := zstdSampleIncompressible(tc.sample); got != tc.zsampled {
			t.Errorf("%s: zstdSampleIncompressible = %v", tc.name, got)
		}
	}
}

func TestModesRoundTrip(t *testing.T) {
	inputs := []struct {
		name string
		src  []byte
		want Method
	}{
		{"empty", nil, None},
		{"short text", []byte(strings.Repeat("hello ", 20)), Zstd},
		{"text 1MiB", textBytes(1<<20, 12), Zstd},
		{"random 1MiB", randomBytes(1<<20, 13), None},
		{"random small", randomBytes(3000, 14), None},
		// A disk image's block: the probe must not judge it by its start.
		{"random then zeros", append(randomBytes(512<<10, 16), make([]byte, 512<<10)...), Zstd},
		{"text past the window", textBytes(3*windowSize, 17), Zstd},
	}
	for _, mode := range []Mode{Auto, Fastest, Default, Max} {
		for _, in := range inputs {
			t.Run(mode.String()+"/"+in.name, func(t *testing.T) {
				out, m := Compress([]byte("dst"), in.src, mode)
				if m != in.want {
					t.Fatalf("method %v, want %v", m, in.want)
				}
				got, err := Decompress(nil, out[3:], m, len(in.src))
				if err != nil || !bytes.Equal(got, in.src) {
					t.Fatalf("round trip: %v", err)
				}
				// Decompress bounds its allocation by the declared size.
				var h zstd.Header
				if m == Zstd && len(in.src) >= 256 && (h.Decode(out[3:]) != nil || !h.HasFCS || h.HasCheckSum) {
					t.Fatalf("frame header: size declared %v, checksum %v", h.HasFCS, h.HasCheckSum)
				}
			})
		}
	}
	// The modes differ: on text, max stores less than fastest.
	text := textBytes(1<<20, 15)
	fast, _ := Compress(nil, text, Fastest)
	most, _ := Compress(nil, text, Max)
	if len(most) >= len(fast) {
		t.Errorf("max stored %d bytes, fastest %d", len(most), len(fast))
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"auto", Auto, true}, {"fastest", Fastest, true}, {"default", Default, true}, {"max", Max, true},
		{"", Auto, false}, {"Max", Auto, false}, {"best", Auto, false}, {"zstd", Auto, false},
	} {
		got, err := ParseMode(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseMode(%q) = %v, %v", tc.in, got, err)
		}
		if err != nil {
			if !errors.Is(err, ErrUnknownMode) || !strings.Contains(err.Error(), "auto, fastest, default, max") {
				t.Errorf("ParseMode(%q): error %q does not list the modes", tc.in, err)
			}
			continue
		}
		if got.String() != tc.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
		b, err := got.MarshalText()
		var back Mode
		if err != nil || back.UnmarshalText(b) != nil || back != got {
			t.Errorf("%v: text round trip gave %v (%v)", got, back, err)
		}
	}
	if _, err := Mode(9).MarshalText(); err == nil {
		t.Error("Mode(9) marshalled")
	}
	if s := Mode(9).String(); s != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", s)
	}
}

// TestLimitExactWithSlack: the decoder gets decodeSlack bytes of room past
// the limit for speed, but output inside that room is still refused, and
// output exactly at the limit is not.
func TestLimitExactWithSlack(t *testing.T) {
	text := textBytes(1000, 9)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	var frame bytes.Buffer
	enc.Reset(&frame) // streaming: no declared size, so only the limit stops it
	if _, err := enc.Write(text); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	for _, src := range [][]byte{frame.Bytes(), enc.EncodeAll(text, nil)} {
		if out, err := Decompress(nil, src, Zstd, len(text)); err != nil || !bytes.Equal(out, text) {
			t.Fatalf("at the limit: %d bytes, %v", len(out), err)
		}
		for _, lim := range []int{len(text) - 1, len(text) - decodeSlack/2} {
			if _, err := Decompress([]byte("d"), src, Zstd, lim); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("limit %d for %d bytes: err = %v, want ErrTooLarge", lim, len(text), err)
			}
		}
	}
}

// A restore decompresses thousands of blobs into one reused buffer per
// worker. The buffer must come back with all its capacity and grow by
// doubling: it used to come back cut to each blob's size, so every larger
// blob made a new one (2,400 of 8,000 blobs on cofferbench's source set,
// 470 MB zeroed, and twice the collections).
func TestDecompressReusesTheCallersBuffer(t *testing.T) {
	var frames [][]byte
	var sizes []int
	for i := range 20 {
		plain := textBytes(100<<10+i*1024, uint64(i)) // each a little larger
		c, m := Compress(nil, plain, Default)
		if m != Zstd {
			t.Fatalf("text of %d bytes was stored as %v", len(plain), m)
		}
		frames, sizes = append(frames, c), append(sizes, len(plain))
	}
	var buf []byte
	grown := 0
	for i, c := range frames {
		before := cap(buf)
		out, err := Decompress(buf[:0], c, Zstd, sizes[i])
		if err != nil || len(out) != sizes[i] {
			t.Fatalf("frame %d: %d bytes, %v", i, len(out), err)
		}
		if cap(out) < before {
			t.Fatalf("frame %d: the buffer came back with %d bytes of capacity, it had %d", i, cap(out), before)
		}
		if cap(out) != before {
			grown++
		}
		buf = out
	}
	if grown > 2 {
		t.Fatalf("a buffer reused for 20 growing blobs was replaced %d times, want at most 2", grown)
	}

	// Decompressing into a buffer large enough allocates nothing.
	small := frames[0]
	allocs := testing.AllocsPerRun(20, func() {
		out, err := Decompress(buf[:0], small, Zstd, sizes[0])
		if err != nil || cap(out) != cap(buf) {
			t.Fatalf("%d bytes of capacity after decompressing into %d, %v", cap(out), cap(buf), err)
		}
	})
	if allocs != 0 {
		t.Fatalf("decompressing into a large enough buffer allocated %v times", allocs)
	}
}
