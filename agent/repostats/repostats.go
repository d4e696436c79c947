// Package repostats measures a repository: for each recovery point, what
// it restores and what it takes in storage, alone and shared with other
// points, and for the whole repository how well deduplication and
// compression work and how much stored space no point uses.
package repostats

import (
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treerefs"
)

// Point is one point's figures.
type Point struct {
	ID          string `json:"id"`
	Files       int64  `json:"files"`
	Dirs        int64  `json:"dirs"`
	RestoreSize int64  `json:"restoreSize"` // the files' sizes: what a restore writes
	Blobs       int    `json:"blobs"`       // distinct blobs (chunks and trees) it uses
	RawSize     int64  `json:"rawSize"`     // their plaintext: the data once deduplicated
	StoredSize  int64  `json:"storedSize"`  // their stored size, compressed and sealed
	// UniqueStoredSize is the stored size of the blobs no other point
	// uses: about what forgetting only this point and pruning frees.
	UniqueStoredSize int64   `json:"uniqueStoredSize"`
	DedupRatio       float64 `json:"dedupRatio"`       // RestoreSize / data RawSize
	CompressionRatio float64 `json:"compressionRatio"` // RawSize / StoredSize
}

// Repository is the figures of every point together.
type Repository struct {
	Points           int     `json:"points"`
	RestoreSize      int64   `json:"restoreSize"` // all points' restore sizes added up
	Blobs            int     `json:"blobs"`       // distinct blobs the points use
	RawSize          int64   `json:"rawSize"`
	StoredSize       int64   `json:"storedSize"`
	Packs            int     `json:"packs"`
	PackSize         int64   `json:"packSize"`   // everything stored in packs
	UnusedSize       int64   `json:"unusedSize"` // stored in packs but used by no point: what prune can free
	DedupRatio       float64 `json:"dedupRatio"`
	CompressionRatio float64 `json:"compressionRatio"`
	// Compression is the mode new data is compressed with (the config's
	// setting); stored data may have been written with another.
	Compression string `json:"compression"`
}

// Stats is what Measure returns.
type Stats struct {
	Repository Repository `json:"repository"`
	Points     []Point    `json:"points"`
}

// Measure computes the figures of the given points (all of the
// repository's complete points, oldest first, for the repository total
// and for unique sizes to mean anything). The index must be loaded.
func Measure(ctx context.Context, r *repository.Repository, points []*repository.Point) (*Stats, error) {
	idx := r.Index()
	trees := treerefs.New(r)
	users := map[crypto.ID]int{} // how many points use each blob
	data := map[crypto.ID]bool{} // the data blobs (not trees)
	for _, p := range points {
		err := trees.Walk(ctx, p.Tree, map[crypto.ID]bool{}, func(id crypto.ID) { users[id]++ })
		if err != nil {
			return nil, fmt.Errorf("point %s: %w; run `coffer check`", p.ID, err)
		}
	}
	lookup := func(id crypto.ID) (repository.Location, error) {
		loc, ok := idx.Lookup(id)
		if !ok {
			return loc, fmt.Errorf("blob %s is in no index; run `coffer check`", id)
		}
		return loc, nil
	}
	st := &Stats{Points: []Point{}}
	var dataRaw int64
	for id := range users {
		loc, err := lookup(id)
		if err != nil {
			return nil, err
		}
		st.Repository.Blobs++
		st.Repository.RawSize += int64(loc.RawLength)
		st.Repository.StoredSize += loc.StoredSize()
		if loc.Type == repository.DataBlob {
			data[id] = true
			dataRaw += int64(loc.RawLength)
		}
	}
	for _, p := range points {
		ps := Point{ID: p.ID, Files: p.Summary.Files, Dirs: p.Summary.Dirs, RestoreSize: p.Summary.Bytes}
		var pointData int64
		var lerr error
		err := trees.Walk(ctx, p.Tree, map[crypto.ID]bool{}, func(id crypto.ID) {
			loc, err := lookup(id)
			if err != nil {
				lerr = err
				return
			}
			ps.Blobs++
			ps.RawSize += int64(loc.RawLength)
			ps.StoredSize += loc.StoredSize()
			if users[id] == 1 {
				ps.UniqueStoredSize += loc.StoredSize()
			}
			if data[id] {
				pointData += int64(loc.RawLength)
			}
		})
		if err == nil {
			err = lerr
		}
		if err != nil {
			return nil, fmt.Errorf("point %s: %w", p.ID, err)
		}
		ps.DedupRatio = ratio(ps.RestoreSize, pointData)
		ps.CompressionRatio = ratio(ps.RawSize, ps.StoredSize)
		st.Points = append(st.Points, ps)
		st.Repository.Points++
		st.Repository.RestoreSize += ps.RestoreSize
	}
	for _, pi := range idx.Packs() {
		st.Repository.Packs++
		st.Repository.PackSize += pi.Size
	}
	st.Repository.UnusedSize = max(0, st.Repository.PackSize-st.Repository.StoredSize)
	st.Repository.DedupRatio = ratio(st.Repository.RestoreSize, dataRaw)
	st.Repository.CompressionRatio = ratio(st.Repository.RawSize, st.Repository.StoredSize)
	st.Repository.Compression = r.Config().Compression.String()
	return st, nil
}

// ratio is a/b, or 0 when b is 0 (an empty point deduplicates nothing).
func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
