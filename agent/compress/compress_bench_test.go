package compress

import (
	"fmt"
	"math"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// entropyIncompressible is the alternative pre-check measured against the
// zstd sample: sample counts as random when its order-0 (byte histogram)
// Shannon entropy exceeds 7.9 bits per byte, where no entropy coder can save
// 1/32. It is blind to repeats of random-looking data.
func entropyIncompressible(sample []byte) bool {
	// Four histograms break the store-to-load dependency on repeated bytes.
	var hist [4][256]uint32
	i := 0
	for ; i+4 <= len(sample); i += 4 {
		hist[0][sample[i]]++
		hist[1][sample[i+1]]++
		hist[2][sample[i+2]]++
		hist[3][sample[i+3]]++
	}
	for ; i < len(sample); i++ {
		hist[0][sample[i]]++
	}
	n := float64(len(sample))
	var h float64
	for b := range 256 {
		if c := hist[0][b] + hist[1][b] + hist[2][b] + hist[3][b]; c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h > 7.9
}

// BenchmarkCompress measures 1 MiB inputs (MB/s of input). Sub-benchmarks:
//   - zstd-fastest / zstd-default: plain EncodeAll at each level, with the
//     output size reported as %size;
//   - Compress-nocheck / -zstdsample / -entropy: the package path without a
//     pre-check, with a zstd-compressed 16 KiB sample (the one Compress
//     uses), and with the byte entropy of the sample;
//   - check-only-*: the cost of each pre-check by itself.
func BenchmarkCompress(b *testing.B) {
	fastest, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		b.Fatal(err)
	}
	def, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		b.Fatal(err)
	}
	inputs := []struct {
		name string
		data []byte
	}{
		{"text", textBytes(1<<20, 1)},
		{"random", randomBytes(1<<20, 2)},
	}
	for _, in := range inputs {
		run := func(name string, f func(dst []byte) []byte) {
			b.Run(in.name+"/"+name, func(b *testing.B) {
				dst := make([]byte, 0, 2<<20)
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				var out []byte
				for b.Loop() {
					out = f(dst[:0])
				}
				b.ReportMetric(100*float64(len(out))/float64(len(in.data)), "%size")
			})
		}
		run("zstd-fastest", func(dst []byte) []byte { return fastest.EncodeAll(in.data, dst) })
		run("zstd-default", func(dst []byte) []byte { return def.EncodeAll(in.data, dst) })
		withCheck := func(check func([]byte) bool) plan {
			return func(src []byte) zstd.EncoderLevel {
				if check != nil && len(src) >= precheckMin && check(src[:sampleSize]) {
					return 0
				}
				return zstd.SpeedFastest
			}
		}
		run("Compress-nocheck", func(dst []byte) []byte { out, _ := compressWith(dst, in.data, withCheck(nil)); return out })
		run("Compress-zstdsample", func(dst []byte) []byte { out, _ := Compress(dst, in.data, Fastest); return out })
		run("Compress-entropy", func(dst []byte) []byte {
			out, _ := compressWith(dst, in.data, withCheck(entropyIncompressible))
			return out
		})
		for _, check := range []struct {
			name string
			f    func([]byte) bool
		}{{"zstdsample", zstdSampleIncompressible}, {"entropy", entropyIncompressible}} {
			b.Run(in.name+"/check-only-"+check.name, func(b *testing.B) {
				b.SetBytes(int64(len(in.data)))
				for b.Loop() {
					check.f(in.data[:sampleSize])
				}
			})
		}
	}
}

// BenchmarkDecompress measures restoring text in one blob: 16 KiB, as most
// files of a source tree, and a 1 MiB chunk.
func BenchmarkDecompress(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			src := textBytes(size, 1)
			c, m := Compress(nil, src, Auto)
			dst := make([]byte, 0, len(src)+decodeSlack)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decompress(dst[:0], c, m, len(src)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
