// Package checker verifies a repository. The structural check loads every
// index, point, pack reference list and tree, and confirms that every blob
// a point needs is indexed in a pack that exists. With ReadData it also
// reads every pack, checks it against its name and authenticates every blob
// in it, then names each damaged object with the points and files it hurts.
package checker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/storage"
)

// Problem is one damaged or missing object and what it affects.
type Problem struct {
	Object string   `json:"object"`
	Err    string   `json:"problem"`
	Points []string `json:"points"`
	Files  []string `json:"files"`
}

// Report is the outcome of a check.
type Report struct {
	Points    int       `json:"points"`
	Packs     int       `json:"packs"`
	Blobs     int       `json:"blobs"`
	BytesRead int64     `json:"bytesRead"`
	Problems  []Problem `json:"problems"` // coffer check --json prints [] when there are none
}

// Options tune a check.
type Options struct {
	ReadData bool
	Workers  int
}

type checker struct {
	repo *repository.Repository
	opts Options

	mu       sync.Mutex
	problems map[string]*Problem
	bad      map[crypto.ID]string // damaged or missing blob → its problem key
}

func (c *checker) report(object, problem string) *Problem {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.problems[object]
	if !ok {
		p = &Problem{Object: object, Err: problem}
		c.problems[object] = p
	}
	return p
}

// Check runs the check.
func Check(ctx context.Context, repo *repository.Repository, opts Options) (*Report, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	c := &checker{repo: repo, opts: opts, problems: map[string]*Problem{}, bad: map[crypto.ID]string{}}
	rep := &Report{}
	st, err := repo.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range st.DamagedIndex {
		c.report(n, "index file fails authentication or decoding")
	}
	for _, n := range st.DamagedPacks {
		c.report(n, "pack header fails authentication; its blobs are unusable")
	}
	packs := repo.Index().Packs()
	rep.Packs, rep.Blobs = len(packs), repo.Index().Len()

	if opts.ReadData {
		n, err := c.readData(ctx, packs)
		if err != nil {
			return nil, err
		}
		rep.BytesRead = n
	}

	points, loadErr := repo.Points(ctx)
	if loadErr != nil {
		c.report("points/", loadErr.Error())
	}
	rep.Points = len(points)
	for _, p := range points {
		if err := c.checkPoint(ctx, p); err != nil {
			return nil, err
		}
	}
	for _, p := range c.problems {
		slices.Sort(p.Points)
		p.Points = slices.Compact(p.Points)
		slices.Sort(p.Files)
		p.Files = slices.Compact(p.Files)
		rep.Problems = append(rep.Problems, *p)
	}
	slices.SortFunc(rep.Problems, func(a, b Problem) int {
		if a.Object < b.Object {
			return -1
		}
		if a.Object > b.Object {
			return 1
		}
		return 0
	})
	return rep, nil
}

// readData reads every pack whole and authenticates every blob in it.
func (c *checker) readData(ctx context.Context, packs map[crypto.ID]*repository.PackInfo) (int64, error) {
	var total int64
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Workers)
	for id, info := range packs {
		g.Go(func() error {
			name := repository.PackName(id)
			data, err := storage.ReadAll(gctx, c.repo.Backend(), name)
			if gctx.Err() != nil {
				return gctx.Err()
			}
			mu.Lock()
			total += int64(len(data))
			mu.Unlock()
			if err != nil {
				c.markPack(name, info, fmt.Sprintf("cannot be read: %v", err))
				return nil
			}
			if sha256.Sum256(data) != id {
				// The name no longer matches: some bytes changed. Find which blobs.
				c.report(name, "content does not match its name (bytes changed in storage)")
			}
			var g repository.GroupBuf
			for _, e := range info.Blobs {
				end := int64(e.Offset) + int64(e.Length)
				if end > int64(len(data)) {
					c.markBlob(name, e.ID, "blob lies beyond the end of its pack (truncated)")
					continue
				}
				var err error
				if e.Grouped() {
					_, err = c.repo.OpenMember(&g, e, data[e.Offset:end])
				} else {
					_, err = c.repo.OpenBlob(e, data[e.Offset:end])
				}
				if err != nil {
					c.markBlob(name, e.ID, fmt.Sprintf("%s blob %s fails authentication", e.Type, e.ID))
				}
			}
			return nil
		})
	}
	return total, g.Wait()
}

func (c *checker) markPack(name string, info *repository.PackInfo, problem string) {
	c.report(name, problem)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range info.Blobs {
		c.bad[e.ID] = name
	}
}

func (c *checker) markBlob(pack string, id crypto.ID, problem string) {
	key := pack + " (blob " + id.String() + ")"
	c.report(key, problem)
	c.mu.Lock()
	c.bad[id] = key
	c.mu.Unlock()
}

// checkPoint walks a point's trees, checking every blob is indexed and
// undamaged, and its pack reference list names every pack it needs.
func (c *checker) checkPoint(ctx context.Context, p *repository.Point) error {
	idx := c.repo.Index()
	needed := map[crypto.ID]crypto.ID{} // blob → the pack the index picked
	var walk func(id crypto.ID, dir string) error
	hurt := func(id crypto.ID, file string) bool {
		c.mu.Lock()
		key, bad := c.bad[id]
		c.mu.Unlock()
		loc, ok := idx.Lookup(id)
		if !ok {
			key, bad = "blob "+id.String(), true
			c.report(key, "missing: no index names it, or its pack is gone")
			c.mu.Lock()
			c.bad[id] = key
			c.mu.Unlock()
		} else {
			needed[id] = loc.Pack
		}
		if bad {
			pr := c.report(key, "")
			c.mu.Lock()
			pr.Points = append(pr.Points, p.ID)
			if file != "" {
				pr.Files = append(pr.Files, file)
			}
			c.mu.Unlock()
		}
		return bad
	}
	walk = func(id crypto.ID, dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if hurt(id, dir+"/") {
			return nil
		}
		b, err := c.repo.LoadBlob(ctx, id)
		if err != nil {
			key := "tree " + id.String()
			pr := c.report(key, fmt.Sprintf("cannot be read: %v", err))
			c.mu.Lock()
			pr.Points = append(pr.Points, p.ID)
			pr.Files = append(pr.Files, dir+"/")
			c.mu.Unlock()
			return nil
		}
		t, err := tree.Decode(b)
		if err != nil {
			c.report("tree "+id.String(), err.Error()).Points = []string{p.ID}
			return nil
		}
		for _, n := range t.Nodes {
			fp := path.Join(dir, string(n.Name))
			switch n.Type {
			case tree.Dir:
				if err := walk(*n.Subtree, fp); err != nil {
					return err
				}
			case tree.File:
				for _, r := range n.Content {
					if !r.Hole && hurt(r.ID, fp) {
						break
					}
				}
			}
		}
		return nil
	}
	if err := walk(p.Tree, ""); err != nil {
		return err
	}
	refsName := packrefs.Name(p.ID)
	b, err := storage.ReadAll(ctx, c.repo.Backend(), refsName)
	if err != nil {
		c.report(refsName, fmt.Sprintf("cannot be read: %v; the control plane could delete packs this point needs", err)).Points = []string{p.ID}
		return nil
	}
	refs, err := packrefs.Decode(b)
	if err != nil || refs.Point != p.ID {
		c.report(refsName, fmt.Sprintf("is damaged: %v", err)).Points = []string{p.ID}
		return nil
	}
	listed := map[string]bool{}
	for _, pk := range refs.Packs {
		listed[pk] = true
	}
	// A blob stored twice (a repack, a backup killed before its index)
	// is safe if the list names any pack with a copy: the control plane
	// keeps that one, and readers find it when the other is gone.
	unlisted := map[crypto.ID]bool{}
	for blob, pk := range needed {
		if !listed[hex.EncodeToString(pk[:])] {
			unlisted[blob] = true
		}
	}
	if len(unlisted) > 0 {
		for pk, info := range idx.Packs() {
			if listed[hex.EncodeToString(pk[:])] {
				for _, e := range info.Blobs {
					delete(unlisted, e.ID)
				}
			}
		}
	}
	if len(unlisted) > 0 {
		c.report(refsName, "does not name every pack the point needs; the control plane could delete one").Points = []string{p.ID}
	}
	return nil
}
