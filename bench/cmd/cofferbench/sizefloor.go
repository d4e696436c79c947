//go:build unix

package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"

	"github.com/coffer-backup/coffer/agent/chunker"
)

// sizeFloorWindow is the zstd window of the size floor: far beyond what a
// repository that compresses each chunk alone can use (a chunk is 1 MiB on
// average), so matches across chunks and files count too.
const sizeFloorWindow = 64 << 20

// sizeFloor bounds the repository size any zstd-compressing deduplicating
// backup can reach on root: every regular file's data extents, in path
// order, cut by Coffer's chunker; each distinct chunk once, all of them as
// one zstd stream at the strongest level klauspost/compress offers
// (SpeedBestCompression, literals always entropy-coded) with a 64 MiB
// window. A repository compresses each chunk on its own and adds
// encryption, headers, trees and an index, all of which only make it
// larger, so no zstd setting of a chunk-at-a-time repository stores less
// than this. It is not a bound for other compressors (xz, or recompressing
// the deflate streams inside documents).
//
// It returns the compressed size and the bytes read.
func sizeFloor(root string) (stored, read int64, elapsed time.Duration, err error) {
	start := time.Now()
	var out countingWriter
	enc, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(sizeFloorWindow), zstd.WithAllLitEntropyCompression(true), zstd.WithEncoderCRC(false))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("size floor: %w", err)
	}
	ch := chunker.New([32]byte{}, chunker.DefaultParams)
	seen := map[[32]byte]struct{}{}
	var buf []byte
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		for _, ex := range backupExtents(f, fi.Size()) {
			ch.Reset(io.NewSectionReader(f, ex.Offset, ex.Length))
			for {
				buf, err = ch.Next(buf[:0])
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("read %s: %w", path, err)
				}
				read += int64(len(buf))
				id := blake3.Sum256(buf)
				if _, dup := seen[id]; dup {
					continue
				}
				seen[id] = struct{}{}
				if _, err := enc.Write(buf); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if cerr := enc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, read, 0, fmt.Errorf("size floor: %w", err)
	}
	return out.n, read, time.Since(start), nil
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func (d *datasetResult) measureSizeFloor(src string) {
	stored, read, t, err := sizeFloor(src)
	if err != nil {
		d.floorFailed("Repository size", err)
		return
	}
	d.floors.size, d.floors.sizeRead = stored, read
	progress("[%s] floor, repository size (distinct chunks, one zstd stream, best level, 64 MiB window): %.1f MiB of %.1f MiB read, in %.0f s",
		d.kind, mib(stored), mib(read), t.Seconds())
}
