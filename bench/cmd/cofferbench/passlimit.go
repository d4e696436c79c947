//go:build unix

package main

import (
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
	"runtime"
	"sync"
	"time"

	"github.com/zeebo/blake3"
)

// singlePass is the machine's ceiling for a backup that reads every byte
// once: read each file, hash it with BLAKE3 and seal it with AES-256-GCM in
// 1 MiB pieces, on every core. No compression, chunking, packing or writing,
// so no real backup can beat it; the benchmark reports Coffer's initial
// backup as a fraction of it.
//
// It runs passWorkersPerCore readers per core: with the page cache dropped,
// small files are bound by disk latency, not CPU, and a backup tool is free
// to keep several reads in flight per core. With one reader per core the
// "limit" on the source tree would be the disk's queue depth of 2.
func singlePass(root string) (bytes int64, elapsed time.Duration, err error) {
	return sealPass(root, "single pass")
}

// sealPass reads every regular file under root in 1 MiB pieces, hashes
// each with BLAKE3 and seals it with AES-256-GCM. It returns the bytes
// read and the time from listing the files to the last seal.
func sealPass(root, name string) (bytes int64, elapsed time.Duration, err error) {
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
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return 0, 0, fmt.Errorf("%s: key: %w", name, err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", name, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", name, err)
	}
	total, err := onWorkers(len(files), func(w int) func(i int) (int64, error) {
		s := &sealer{
			name:   name,
			aead:   aead,
			buf:    make([]byte, 1<<20),
			sealed: make([]byte, 0, 1<<20+aead.Overhead()),
			nonce:  make([]byte, aead.NonceSize()),
		}
		binary.LittleEndian.PutUint32(s.nonce, uint32(w)) // distinct per worker
		return func(i int) (int64, error) { return s.file(files[i]) }
	})
	return total, time.Since(start), err
}

const passWorkersPerCore = 4

// passWorkers is how many goroutines every probe runs.
func passWorkers() int { return passWorkersPerCore * runtime.GOMAXPROCS(0) }

// onWorkers calls the function newWorker(w) returns for every index in
// [0, n), on passWorkers goroutines that each take the next index. A worker
// whose call fails stops; the others finish the remaining indexes. It
// returns the sum of the calls' counts and every error.
func onWorkers(n int, newWorker func(w int) func(i int) (int64, error)) (int64, error) {
	var (
		mu    sync.Mutex
		next  int
		total int64
		errs  []error
		wg    sync.WaitGroup
	)
	for w := range passWorkers() {
		wg.Go(func() {
			do := newWorker(w)
			var n64 int64
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					break
				}
				got, err := do(i)
				n64 += got
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					break
				}
			}
			mu.Lock()
			total += n64
			mu.Unlock()
		})
	}
	wg.Wait()
	return total, errors.Join(errs...)
}

// sealer is one worker's buffers for sealPass.
type sealer struct {
	name   string
	aead   cipher.AEAD
	buf    []byte
	sealed []byte
	nonce  []byte
	ctr    uint64
}

func (s *sealer) file(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s.name, err)
	}
	defer f.Close()
	h := blake3.New()
	var n int64
	for {
		k, err := io.ReadFull(f, s.buf)
		if k > 0 {
			piece := s.buf[:k]
			h.Write(piece)
			s.ctr++
			binary.LittleEndian.PutUint64(s.nonce[4:], s.ctr)
			s.sealed = s.aead.Seal(s.sealed[:0], s.nonce, piece, nil)
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			var sum [32]byte
			h.Sum(sum[:0])
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("%s: read %s: %w", s.name, path, err)
		}
	}
}
