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
	start := time.Now()
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("single pass: list files: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return 0, 0, fmt.Errorf("single pass: key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return 0, 0, fmt.Errorf("single pass: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return 0, 0, fmt.Errorf("single pass: %w", err)
	}

	var (
		mu    sync.Mutex
		next  int
		total int64
		errs  []error
		wg    sync.WaitGroup
	)
	for w := range passWorkersPerCore * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			sealed := make([]byte, 0, len(buf)+aead.Overhead())
			nonce := make([]byte, aead.NonceSize())
			binary.LittleEndian.PutUint32(nonce, uint32(w)) // distinct per worker
			var ctr uint64
			var n int64
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(files) {
					break
				}
				got, err := hashAndSeal(files[i], buf, sealed, nonce, &ctr, aead)
				n += got
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					break
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return total, time.Since(start), errors.Join(errs...)
}

const passWorkersPerCore = 4

func hashAndSeal(path string, buf, sealed, nonce []byte, ctr *uint64, aead cipher.AEAD) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("single pass: %w", err)
	}
	defer f.Close()
	h := blake3.New()
	var n int64
	for {
		k, err := io.ReadFull(f, buf)
		if k > 0 {
			h.Write(buf[:k])
			*ctr++
			binary.LittleEndian.PutUint64(nonce[4:], *ctr)
			sealed = aead.Seal(sealed[:0], nonce, buf[:k], nil)
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			var sum [32]byte
			h.Sum(sum[:0])
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("single pass: read %s: %w", path, err)
		}
	}
}
