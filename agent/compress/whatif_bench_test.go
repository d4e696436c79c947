package compress

import (
	"testing"

	"github.com/klauspost/compress/dict"
	"github.com/klauspost/compress/zstd"

	"github.com/coffer-backup/coffer/bench/dataset"
)

// BenchmarkWhatIf measures, at zstd's default level, two ways to compress
// better that the repository format does not offer, to say what they would
// be worth on cofferbench's datasets (%size: stored over input):
//   - dict: blobs under 64 KiB (small files) with a 64 KiB dictionary
//     trained on the other half of them, against none; odd blobs are
//     trained on, even ones compressed, so no blob sees itself;
//   - units: all blobs compressed one at a time, against consecutive blobs
//     joined into units of at least 4 MiB (as larger chunks or compressing
//     per pack would do; dedup is then coarser);
//   - groups: what format version 2 does, blobs under 64 KiB joined into
//     groups of 512 KiB (repository.GroupBlobMax and GroupTarget), larger
//     ones alone, 28 bytes of sealing per stored object.
func BenchmarkWhatIf(b *testing.B) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false))
	if err != nil {
		b.Fatal(err)
	}
	size := func(in [][]byte, e *zstd.Encoder) (raw, stored int64) {
		var dst []byte
		for _, bl := range in {
			dst = e.EncodeAll(bl, dst[:0])
			raw += int64(len(bl))
			stored += int64(min(len(dst), len(bl)))
		}
		return raw, stored
	}
	for _, kind := range []dataset.Kind{dataset.Source, dataset.Large, dataset.Office} {
		blobs, err := corpus(kind)
		if err != nil {
			b.Fatal(err)
		}
		var train, test [][]byte
		for i, bl := range blobs {
			if len(bl) >= 64<<10 {
				continue
			}
			if i%2 == 1 {
				train = append(train, bl)
			} else {
				test = append(test, bl)
			}
		}
		if len(train) >= 8 {
			b.Run(string(kind)+"/dict", func(b *testing.B) {
				var raw, plain, withDict int64
				for b.Loop() {
					d, err := dict.BuildZstdDict(train, dict.Options{MaxDictSize: 64 << 10, HashBytes: 6, ZstdDictID: 1, ZstdLevel: zstd.SpeedDefault})
					if err != nil {
						b.Fatal(err)
					}
					de, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false), zstd.WithEncoderDict(d))
					if err != nil {
						b.Fatal(err)
					}
					raw, plain = size(test, enc)
					_, withDict = size(test, de)
				}
				b.ReportMetric(float64(raw)/float64(len(test)), "B/blob")
				b.ReportMetric(100*float64(plain)/float64(raw), "%size-nodict")
				b.ReportMetric(100*float64(withDict)/float64(raw), "%size-dict")
			})
		}
		b.Run(string(kind)+"/groups", func(b *testing.B) {
			const blobMax, target, seal = 64 << 10, 512 << 10, 28
			var raw, single, grouped int64
			for b.Loop() {
				raw, single, grouped = 0, 0, 0
				var dst, cur []byte
				store := func(in []byte) int64 {
					dst = enc.EncodeAll(in, dst[:0])
					return int64(min(len(dst), len(in)) + seal)
				}
				for _, bl := range blobs {
					raw += int64(len(bl))
					single += store(bl)
					if len(bl) >= blobMax {
						grouped += store(bl)
						continue
					}
					if cur = append(cur, bl...); len(cur) >= target {
						grouped += store(cur)
						cur = cur[:0]
					}
				}
				if len(cur) > 0 {
					grouped += store(cur)
				}
			}
			b.ReportMetric(100*float64(single)/float64(raw), "%size-blobs")
			b.ReportMetric(100*float64(grouped)/float64(raw), "%size-groups")
		})
		b.Run(string(kind)+"/units", func(b *testing.B) {
			var units [][]byte
			var cur []byte
			for _, bl := range blobs {
				cur = append(cur, bl...)
				if len(cur) >= 4<<20 {
					units, cur = append(units, cur), nil
				}
			}
			if len(cur) > 0 {
				units = append(units, cur)
			}
			var raw, single, joined int64
			for b.Loop() {
				raw, single = size(blobs, enc)
				_, joined = size(units, enc)
			}
			b.ReportMetric(100*float64(single)/float64(raw), "%size-blobs")
			b.ReportMetric(100*float64(joined)/float64(raw), "%size-4MiB")
		})
	}
}
