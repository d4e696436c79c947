// Package compress compresses chunk and object payloads before they are
// sealed. The method is recorded per object so others can be added later.
//
// Choices, from BenchmarkModes (blobs of cofferbench's datasets) and
// BenchmarkCompress (1 MiB inputs):
//
//   - Zstandard, at the level the repository's Mode picks; Auto, the
//     default, is SpeedDefault (see autoLevel and docs/benchmarks.md).
//   - Inputs of 64 KiB or more are pre-checked by compressing a 16 KiB
//     sample spread over them (see probe): if that sample does not save
//     1/32 the input is stored as is.
//     On random data this is ~6x faster than compressing everything (zstd
//     still scans the whole input before giving up); on compressible data
//     it costs ~1% more. A byte-entropy estimate of the sample was measured
//     too: cheaper on text, but blind to repeated random-looking data and
//     no faster on random data, so the zstd sample, which applies the same
//     rule as the final decision, was kept.
package compress

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Method identifies how an object's payload is compressed.
type Method uint8

const (
	None Method = 0 // stored as is
	Zstd Method = 1 // a single Zstandard frame
)

// String returns the method's name.
func (m Method) String() string {
	switch m {
	case None:
		return "none"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Method(%d)", uint8(m))
}

// ErrTooLarge reports that decompressed output would exceed the caller's
// limit: a corrupt or hostile object (decompression bomb).
var ErrTooLarge = errors.New("compress: decompressed size exceeds limit")

// Mode is a repository's compression setting: how hard new data is
// compressed. Every mode writes the same format (zstd frames or stored
// bytes), so a repository's mode can change at any time and all data stays
// readable. The zero value is Auto, so configs written before the setting
// existed mean auto.
type Mode uint8

const (
	Auto    Mode = iota // measured default: see autoLevel
	Fastest             // zstd SpeedFastest
	Default             // zstd SpeedDefault (restic's auto)
	Max                 // zstd SpeedBestCompression: 8-13x the CPU of Default
)

var modeNames = [...]string{Auto: "auto", Fastest: "fastest", Default: "default", Max: "max"}

// ModeNames lists the valid modes, for help texts and errors.
func ModeNames() []string { return modeNames[:] }

// String returns the mode's name as users type it.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ErrUnknownMode reports a compression mode name this build does not know.
var ErrUnknownMode = errors.New("unknown compression mode")

// ParseMode returns the mode named s.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return Auto, fmt.Errorf("%w %q: use one of %s", ErrUnknownMode, s, strings.Join(modeNames[:], ", "))
}

// MarshalText writes the mode's name, as configs store it.
func (m Mode) MarshalText() ([]byte, error) {
	if int(m) >= len(modeNames) {
		return nil, fmt.Errorf("%w %d", ErrUnknownMode, uint8(m))
	}
	return []byte(modeNames[m]), nil
}

// UnmarshalText reads a mode's name; unknown names are an error wrapping
// ErrUnknownMode.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

const (
	// sampleSize is how much of a large input the pre-check looks at, in
	// pieces of samplePiece bytes.
	sampleSize  = 16 << 10
	samplePiece = 2 << 10
	// precheckMin is the input size from which a pre-check is worth it: below
	// it the full attempt costs little more than the check.
	precheckMin = 4 * sampleSize
)

// encoders holds one encoder per zstd level, each made on first use: a
// repository uses one or two levels, and an encoder at the higher levels
// costs megabytes of tables per state. EncodeAll is safe for concurrent use;
// each encoder keeps a pool of GOMAXPROCS states, so no blob pays for
// creating one.
var encoders [zstd.SpeedBestCompression + 1]func() (*zstd.Encoder, error)

// windowSize is how far back zstd looks for matches within a blob.
const windowSize = 1 << 20

func init() {
	for l := zstd.SpeedFastest; l <= zstd.SpeedBestCompression; l++ {
		encoders[l] = sync.OnceValues(func() (*zstd.Encoder, error) {
			// No frame checksum: the AEAD tag and the blob's keyed hash
			// already verify every byte, and the 4 bytes per blob add up on
			// many small files.
			//
			// A 1 MiB window (the average chunk) and lower encoder memory
			// keep each state's buffers small: with 2 states, SpeedDefault
			// retained 36 MiB of heap with the default 8 MiB window and
			// 6 MiB with these, SpeedFastest 18 and 4, for output at most
			// 0.01% larger and the same speed (the BenchmarkModes corpora).
			//
			// Blocks without a match are Huffman-coded too; klauspost
			// stores them raw below SpeedBetterCompression. Text drawn
			// from a vocabulary of a few thousand words has few repeats
			// within a small file or a 16 KiB sample, though its letters
			// code in about 5 bits: 4 KiB files of it were stored at 99.8%
			// (fastest) and 76.6% (default) of their size instead of 60%,
			// and the pre-check stored whole 1 MiB chunks of it that
			// compress to 36-40%. On cofferbench's datasets this changes
			// sizes by under 0.1% and costs up to 10% of the CPU on
			// office, none on source or large.
			return zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithEncoderCRC(false),
				zstd.WithWindowSize(windowSize), zstd.WithLowerEncoderMem(true),
				zstd.WithAllLitEntropyCompression(true))
		})
	}
}

var (
	decoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		// DecodeAllCapLimit makes DecodeAll stop at cap(dst), which Decompress
		// sets to the caller's limit: output can never grow beyond it.
		return zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderConcurrency(0))
	})
	samplePool = sync.Pool{New: func() any { b := make([]byte, 0, 2*sampleSize); return &b }}
)

// worthIt reports whether compressed output of size c for input of size n
// saves at least 1/32 of n; less is not worth a decompression on restore.
func worthIt(c, n int) bool { return c <= n-n/32 && c < n }

// Compress appends src compressed with zstd at the level mode m picks to
// dst, or src itself with None if compression would save less than 1/32 of
// its size (random or already-compressed data, and empty input).
func Compress(dst, src []byte, m Mode) (out []byte, method Method) {
	return compressWith(dst, src, planFor(m))
}

// A plan decides, from a probe of the input, the zstd level to compress it
// with, or 0 to store it as is.
type plan func(src []byte) zstd.EncoderLevel

// planFor is each mode's plan. Every one skips data whose sample does not
// compress, which costs ~1% on compressible data and saves compressing
// media and archives for nothing.
func planFor(m Mode) plan {
	switch m {
	case Fastest:
		return fixed(zstd.SpeedFastest)
	case Default:
		return fixed(zstd.SpeedDefault)
	case Max:
		// SpeedBetterCompression was measured too: within 0.4% of Default.
		return fixed(zstd.SpeedBestCompression)
	}
	return autoLevel
}

func fixed(l zstd.EncoderLevel) plan {
	return func(src []byte) zstd.EncoderLevel {
		if _, skip := probe(src); skip {
			return 0
		}
		return l
	}
}

// autoLevel is Auto's plan: the default level, restic's, after the
// pre-check. BenchmarkModes measured the alternatives on cofferbench's
// datasets: fastest stores 4.3% more of source and 1.5% more of large for
// 0.55-0.75x the CPU; better saves under 0.4% for 1.3-1.7x the CPU; and
// using the fastest level for barely compressible inputs (probe ratio
// above 0.85) saved no measurable time on office.
func autoLevel(src []byte) zstd.EncoderLevel {
	if _, skip := probe(src); skip {
		return 0
	}
	return zstd.SpeedDefault
}

// probe pre-checks inputs of 64 KiB or more by compressing a 16 KiB sample
// of them with the fastest encoder: skip reports whether the sample fails
// the same 1/32 rule as the whole input, so the input should be stored as
// is. The sample is 8 pieces of 2 KiB spread over the input, not its first
// 16 KiB: a chunk that starts random and ends in zeros or text (a disk
// image's blocks, an archive with a text tail) was stored whole when only
// its start was probed. On office's blobs (scale 0.05) the first-16-KiB
// probe stored 16% more than compressing every blob; the spread one stores
// nothing more (BenchmarkModes; the sample costs the same to compress).
func probe(src []byte) (ratio float64, skip bool) {
	if len(src) < precheckMin {
		return 0, false
	}
	bp := samplePool.Get().(*[]byte)
	sample := (*bp)[:0]
	step := (len(src) - samplePiece) / (sampleSize/samplePiece - 1)
	for off := 0; len(sample) < sampleSize; off += step {
		sample = append(sample, src[off:off+samplePiece]...)
	}
	c := zstdSample(sample)
	*bp = sample
	samplePool.Put(bp)
	return float64(c) / sampleSize, !worthIt(c, sampleSize)
}

// compressWith is Compress with the plan given, so the benchmarks can
// compare plans.
func compressWith(dst, src []byte, p plan) ([]byte, Method) {
	if len(src) == 0 {
		return dst, None
	}
	l := p(src)
	if l == 0 {
		return append(dst, src...), None
	}
	enc, err := encoders[l]()
	if err != nil {
		// The encoder cannot fail with constant valid options; storing
		// uncompressed is always correct.
		return append(dst, src...), None
	}
	out := enc.EncodeAll(src, dst)
	if !worthIt(len(out)-len(dst), len(src)) {
		return append(dst, src...), None
	}
	return out, Zstd
}

// zstdSample is the size of sample compressed with the fastest encoder.
func zstdSample(sample []byte) int {
	enc, err := encoders[zstd.SpeedFastest]()
	if err != nil {
		return len(sample)
	}
	bp := samplePool.Get().(*[]byte)
	c := enc.EncodeAll(sample, (*bp)[:0])
	*bp = c
	samplePool.Put(bp)
	return len(c)
}

// zstdSampleIncompressible reports whether sample fails the 1/32 rule.
func zstdSampleIncompressible(sample []byte) bool {
	return !worthIt(zstdSample(sample), len(sample))
}

// Decompress appends the original of src, compressed with m, to dst. Output
// larger than maxSize is refused. What it allocates is bounded by maxSize,
// never by sizes the (untrusted) frame claims: exactly the declared size for
// frames Compress wrote; for a hostile frame the decoder notices the
// overflow only after the block that crosses the limit, having grown the
// buffer once (at most about 2.5 x maxSize in all). The
// error wraps ErrTooLarge when the frame declares its size (Compress always
// does for inputs of 256 bytes or more) or the decoder notices the limit
// between blocks; the cap-limited decoder may instead report the overflow
// as a plain decoding error. Input must be one zstd frame, as Compress
// writes; with a declared size, trailing frames are refused. On error dst is
// returned with its original length.
func Decompress(dst, src []byte, m Method, maxSize int) ([]byte, error) {
	if maxSize < 0 {
		return dst, fmt.Errorf("compress: negative size limit %d", maxSize)
	}
	switch m {
	case None:
		if len(src) > maxSize {
			return dst, fmt.Errorf("compress: %d stored bytes, limit %d: %w", len(src), maxSize, ErrTooLarge)
		}
		return append(dst, src...), nil
	case Zstd:
		return decompressZstd(dst, src, maxSize)
	}
	return dst, fmt.Errorf("compress: unknown method %v", m)
}

func decompressZstd(dst, src []byte, maxSize int) ([]byte, error) {
	dec, err := decoder()
	if err != nil {
		return dst, fmt.Errorf("compress: zstd decoder: %w", err)
	}
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return dst, fmt.Errorf("compress: zstd frame header: %w", err)
	}
	if h.HasFCS {
		if h.FrameContentSize > uint64(maxSize) {
			return dst, fmt.Errorf("compress: zstd frame declares %d bytes, limit %d: %w", h.FrameContentSize, maxSize, ErrTooLarge)
		}
		// Compress declares the size for all but tiny inputs: reserve
		// exactly that, and the decoder may not go past it.
		return decodeCapped(dec, dst, src, int(h.FrameContentSize))
	}
	// No declared size: try a modest capacity first so small objects do not
	// cost a maxSize allocation, then the full limit.
	if first := min(maxSize, noFCSFirstTry); first < maxSize {
		if out, err := decodeCapped(dec, dst, src, first); err == nil {
			return out, nil
		}
	}
	return decodeCapped(dec, dst, src, maxSize)
}

// noFCSFirstTry is the first output capacity tried for frames that do not
// declare their size.
const noFCSFirstTry = 64 << 10

// decodeSlack is room the decoder gets past the output's limit. With it,
// klauspost's decoder copies literals and matches 16 bytes at a time; a
// buffer that ends exactly at the limit makes it copy byte-exact, and that
// loop was 15% of the CPU of restoring the source benchmark set.
const decodeSlack = 64

// decodeCapped decodes src appended to dst with room for at most limit
// bytes: the decoder may use decodeSlack bytes beyond, but output that does
// is refused. A dst too small is replaced by one at least twice its
// capacity, and the result keeps all of it, so that a buffer reused for
// blob after blob settles at the largest instead of being remade for each
// larger one.
func decodeCapped(dec *zstd.Decoder, dst, src []byte, limit int) ([]byte, error) {
	n := len(dst)
	if cap(dst)-n < limit+decodeSlack {
		grown := make([]byte, n, max(n+limit+decodeSlack, 2*cap(dst)))
		copy(grown, dst)
		dst = grown
	}
	// The full slice expression hides any spare capacity of the caller's
	// dst beyond limit and the slack from the cap-limited decoder.
	out, err := dec.DecodeAll(src, dst[:n:n+limit+decodeSlack])
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return dst[:n], fmt.Errorf("compress: zstd: %w (%w)", ErrTooLarge, err)
		}
		return dst[:n], fmt.Errorf("compress: zstd: %w", err)
	}
	if len(out)-n > limit {
		return dst[:n], fmt.Errorf("compress: zstd: output passes the %d-byte limit: %w", limit, ErrTooLarge)
	}
	if len(out) <= cap(dst) && (cap(out) == 0 || &out[:1][0] == &dst[:1][0]) {
		// The capacity hidden from the decoder goes back to the caller,
		// or a reused buffer would shrink to each blob and be reallocated
		// for the next larger one.
		out = dst[:len(out)]
	}
	return out, nil
}
