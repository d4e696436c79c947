//go:build unix

package main

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/zeebo/blake3"

	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/fsmeta"
	"github.com/coffer-backup/coffer/agent/repository"
)

// floorPackSize is where the backup floor starts a new output file:
// Coffer's pack size (repository.DefaultPackSize) and restic's.
const floorPackSize = 16 << 20

// floorSparseMin is the size above which the backup floor asks for a
// file's data extents, as agent/archiver does (its sparseMin): holes only
// matter in large files, and finding them costs two seeks.
const floorSparseMin = 64 << 10

// backupPass is the least an initial backup into an empty deduplicating,
// compressing, encrypted repository must do, on passWorkers goroutines:
//
//   - read each regular file's data extents (SEEK_DATA/SEEK_HOLE, for
//     files above 64 KiB; holes are not read, as Coffer's backup skips
//     them), through Coffer's content-defined chunker at its default
//     parameters and a random seed;
//   - hash each chunk with keyed BLAKE3 (its ID);
//   - for a chunk not seen before in this pass, compress it with Coffer's
//     compressor at the default mode (compress.Auto: stored as is when a
//     sample does not compress, else zstd at restic's level) and seal it
//     with AES-256-GCM; a chunk seen before is skipped, as any
//     deduplicating backup skips it. Chunks under repository.GroupBlobMax
//     are joined, per worker, into groups of repository.GroupTarget that
//     are compressed and sealed as one, as Coffer's format 2 does: fewer,
//     larger calls are less work, and a floor must not do more than Coffer;
//   - append the sealed chunk to the worker's own file under out, starting
//     a new file every floorPackSize bytes.
//
// No fsync: Coffer's local backend syncs every pack it writes
// (shared/storage/local writeSync) for crash safety, which is Coffer's
// choice rather than work the step requires, and restic's local backend
// may sync too; the floor leaves it out. No pack headers, index, trees or
// snapshot either: they are small beside the data.
//
// It returns the bytes read (data extents only) and the time from listing
// the files to the last output file closed. out is created empty first
// and removed afterwards.
func backupPass(root, out string) (read int64, elapsed time.Duration, err error) {
	defer func() {
		if rmErr := os.RemoveAll(out); rmErr != nil && err == nil {
			err = fmt.Errorf("backup pass: %w", rmErr)
		}
	}()
	read, elapsed, err = backupRun(root, out)
	if err != nil {
		return 0, 0, err
	}
	return read, elapsed, nil
}

// backupRun is backupPass without removing out.
func backupRun(root, out string) (read int64, elapsed time.Duration, err error) {
	const name = "backup pass"
	if err := os.RemoveAll(out); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", name, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", name, err)
	}
	var keys [32 + 32 + 32]byte // AES key, MAC key, chunker seed
	if _, err := rand.Read(keys[:]); err != nil {
		return 0, 0, fmt.Errorf("%s: key: %w", name, err)
	}
	block, err := aes.NewCipher(keys[:32])
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", name, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", name, err)
	}
	seed := [32]byte(keys[64:])

	dropCaches()
	start := time.Now()
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: list files: %w", name, err)
	}
	var (
		mu      sync.Mutex
		workers []*packWorker
		seen    = &chunkSet{ids: map[[32]byte]struct{}{}}
	)
	read, err = onWorkers(len(files), func(w int) func(i int) (int64, error) {
		mac, _ := blake3.NewKeyed(keys[32:64]) // a 32-byte key cannot fail
		p := &packWorker{
			name:  name,
			dir:   out,
			id:    w,
			ch:    chunker.New(seed, chunker.DefaultParams),
			mac:   mac,
			aead:  aead,
			seen:  seen,
			nonce: make([]byte, aead.NonceSize()),
		}
		binary.LittleEndian.PutUint32(p.nonce, uint32(w)) // distinct per worker
		mu.Lock()
		workers = append(workers, p)
		mu.Unlock()
		return func(i int) (int64, error) { return p.file(files[i]) }
	})
	for _, p := range workers {
		if len(p.group) > 0 && err == nil {
			err = p.sealWrite(p.group)
		}
		err = errors.Join(err, p.closeFile())
	}
	elapsed = time.Since(start)
	if err != nil {
		return read, elapsed, err
	}
	return read, elapsed, nil
}

// chunkSet is the IDs of the chunks one backupPass has stored.
type chunkSet struct {
	mu  sync.Mutex
	ids map[[32]byte]struct{}
}

// add reports whether id is new, recording it.
func (s *chunkSet) add(id [32]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return false
	}
	s.ids[id] = struct{}{}
	return true
}

// packWorker is one backupPass worker: its chunker, buffers and output file.
type packWorker struct {
	name  string
	dir   string
	id    int
	ch    *chunker.Chunker
	mac   *blake3.Hasher
	aead  cipher.AEAD
	seen  *chunkSet
	chunk []byte
	comp  []byte
	seal  []byte
	group []byte // small chunks waiting to be sealed together
	nonce []byte
	ctr   uint64

	f      *os.File
	w      *bufio.Writer
	inFile int // bytes in f
	nfiles int
}

// backupExtents is what a backup reads of a file of size bytes, as
// agent/archiver does: its data extents when it is above floorSparseMin
// (holes are not read), else all of it.
func backupExtents(f *os.File, size int64) []fsmeta.Extent {
	if size > floorSparseMin {
		if ex, err := fsmeta.DataExtents(f, size); err == nil {
			return ex
		}
	}
	return []fsmeta.Extent{{Offset: 0, Length: size}}
}

// file backs up the file at path and returns the bytes read from it.
func (p *packWorker) file(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.name, err)
	}
	extents := backupExtents(f, fi.Size())
	var n int64
	var id [32]byte
	for _, ex := range extents {
		// The chunker reads the section in 1 MiB pieces.
		p.ch.Reset(io.NewSectionReader(f, ex.Offset, ex.Length))
		for {
			data, err := p.ch.Next(p.chunk[:0])
			p.chunk = data
			if err == io.EOF {
				break
			}
			if err != nil {
				return n, fmt.Errorf("%s: read %s: %w", p.name, path, err)
			}
			n += int64(len(data))
			p.mac.Reset()
			p.mac.Write(data)
			p.mac.Sum(id[:0])
			if !p.seen.add(id) {
				continue
			}
			if len(data) < repository.GroupBlobMax {
				if p.group = append(p.group, data...); len(p.group) < repository.GroupTarget {
					continue
				}
				data, p.group = p.group, p.group[:0]
			}
			if err := p.sealWrite(data); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// sealWrite compresses, seals and writes one chunk or group.
func (p *packWorker) sealWrite(data []byte) error {
	p.comp, _ = compress.Compress(p.comp[:0], data, compress.Auto)
	p.ctr++
	binary.LittleEndian.PutUint64(p.nonce[4:], p.ctr)
	p.seal = p.aead.Seal(p.seal[:0], p.nonce, p.comp, nil)
	return p.write(p.seal)
}

// write appends b to the worker's output file, starting a new one when b
// would take the current one past floorPackSize.
func (p *packWorker) write(b []byte) error {
	if p.f != nil && p.inFile+len(b) > floorPackSize {
		if err := p.closeFile(); err != nil {
			return err
		}
	}
	if p.f == nil {
		f, err := os.OpenFile(filepath.Join(p.dir, fmt.Sprintf("w%02d-%05d", p.id, p.nfiles)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		p.f, p.nfiles = f, p.nfiles+1
		if p.w == nil {
			// Small files' chunks are gathered into 1 MiB writes; larger
			// chunks go straight through.
			p.w = bufio.NewWriterSize(f, 1<<20)
		} else {
			p.w.Reset(f)
		}
	}
	if _, err := p.w.Write(b); err != nil {
		return fmt.Errorf("%s: write: %w", p.name, err)
	}
	p.inFile += len(b)
	return nil
}

// closeFile flushes and closes the current output file, if any.
func (p *packWorker) closeFile() error {
	if p.f == nil {
		return nil
	}
	err := p.w.Flush()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.f, p.inFile = nil, 0
	if err != nil {
		return fmt.Errorf("%s: write: %w", p.name, err)
	}
	return nil
}
