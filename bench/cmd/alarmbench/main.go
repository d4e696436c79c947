// Command alarmbench measures the ransomware alarm (issue 16) on the
// benchmark's datasets: how often it fires on normal days (each day a
// share of the files edited, as `make bench` does; every firing is a false
// positive) and how often it fires when ransomware has overwritten a share
// of the files with random bytes of their size, in place or renamed to a
// new extension (every silence is a miss). It backs up in-process with the
// real archiver into a local repository in the work folder and judges each backup's
// counters with functions/ransomware against the baseline the control plane
// would hold. It prints a Markdown report; docs/benchmarks.md keeps one.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/bench/dataset"
	"github.com/coffer-backup/coffer/functions/ransomware"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/local"
	"github.com/coffer-backup/coffer/shared/wire"
)

type config struct {
	scale     float64
	dir       string
	datasets  []string
	days      int
	change    float64
	trials    int
	fractions []float64
	seed      uint64
	out       string
}

func main() {
	var cfg config
	var datasets, fractions string
	flag.Float64Var(&cfg.scale, "scale", 0.1, "dataset size, as for cofferbench (1.0: 50,000 files / 1 GiB plus 2 GiB of large files)")
	flag.StringVar(&cfg.dir, "dir", ".bench/alarm", "work folder for the datasets and repositories (removed afterwards)")
	flag.StringVar(&cfg.out, "out", "", "also write the Markdown report to this file")
	flag.StringVar(&datasets, "datasets", "source,large", "datasets, comma-separated: source, large, office")
	flag.IntVar(&cfg.days, "days", 10, "normal days per dataset of each kind (the 1% edits, then a typical office day's work), each judged against the days before")
	flag.Float64Var(&cfg.change, "change", 0.01, "share of files a normal day edits (cofferbench's 1%)")
	flag.IntVar(&cfg.trials, "trials", 5, "ransomware runs per share and naming, each with its own seed")
	flag.StringVar(&fractions, "encrypt", "0.2,0.5", "shares of the files ransomware overwrites, comma-separated")
	flag.Uint64Var(&cfg.seed, "seed", 1, "dataset seed")
	flag.Parse()
	cfg.datasets = splitList(datasets)
	for _, f := range splitList(fractions) {
		var x float64
		if _, err := fmt.Sscan(f, &x); err != nil || x <= 0 || x > 1 {
			fmt.Fprintf(os.Stderr, "alarmbench: -encrypt %q: want shares in (0, 1]\n", f)
			os.Exit(2)
		}
		cfg.fractions = append(cfg.fractions, x)
	}
	var w io.Writer = os.Stdout
	if cfg.out != "" {
		f, err := os.Create(cfg.out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "alarmbench:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	if err := run(context.Background(), cfg, w); err != nil {
		fmt.Fprintln(os.Stderr, "alarmbench:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

var pass = []byte("alarmbench passphrase, not secret")

// backer backs a tree up, point after point, into one repository.
type backer struct {
	be     storage.Backend
	root   string
	parent *repository.Point
}

func (b *backer) backup(ctx context.Context) (archiver.Changes, error) {
	r, err := repository.Open(ctx, b.be, pass, repository.Options{})
	if err != nil {
		return archiver.Changes{}, err
	}
	if _, err := r.LoadIndex(ctx); err != nil {
		return archiver.Changes{}, err
	}
	res, err := archiver.Backup(ctx, r, []string{b.root}, archiver.Options{Parent: b.parent, Hostname: "alarmbench", Username: "bench"})
	if err != nil {
		return archiver.Changes{}, err
	}
	b.parent = res.Point
	return res.Changes, nil
}

func counters(c archiver.Changes) wire.ChangeCounters {
	return wire.ChangeCounters{ParentFiles: c.ParentFiles, Files: c.Files, Changed: c.Changed, Renamed: c.Renamed,
		Incompressible: c.Incompressible, Overwritten: c.Overwritten, NewExtension: c.NewExtension, TopNewExtension: c.TopNewExtension, Deleted: c.Deleted}
}

func run(ctx context.Context, cfg config, w io.Writer) error {
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(w, "Ransomware alarm, %s: scale %g, seed %d, %d normal day(s) of %g%% edits then %d typical office day(s), %d ransomware run(s) per case; thresholds functions/ransomware.Default.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), cfg.scale, cfg.seed, cfg.days, 100*cfg.change, cfg.days, cfg.trials)
	for _, kind := range cfg.datasets {
		if err := runDataset(ctx, cfg, kind, w); err != nil {
			return fmt.Errorf("dataset %s: %w", kind, err)
		}
	}
	return nil
}

func runDataset(ctx context.Context, cfg config, kind string, w io.Writer) error {
	work, err := os.MkdirTemp(cfg.dir, kind+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "data")
	st, err := dataset.Generate(root, dataset.Kind(kind), cfg.seed, cfg.scale)
	if err != nil {
		return err
	}
	be, err := local.New(filepath.Join(work, "repo"))
	if err != nil {
		return err
	}
	fast := &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}
	if _, err := repository.Init(ctx, be, pass, repository.Options{KDF: fast}); err != nil {
		return err
	}
	b := &backer{be: be, root: root}
	if _, err := b.backup(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "### Dataset `%s`: %d files, %.1f MiB\n\n", kind, st.Files, float64(st.Bytes)/(1<<20))
	fmt.Fprintln(w, "| Backup | Changed | Renamed | Incompressible | Overwritten whole | Top new extension | Deleted | Alarm |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	row := func(name string, c wire.ChangeCounters, v ransomware.Verdict) {
		alarm := "silent"
		if v.Suspicious {
			alarm = "**fires**: " + v.Reason()
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %s |\n", name, c.Changed, c.Renamed, c.Incompressible, c.Overwritten, c.TopNewExtension, c.Deleted, alarm)
	}

	var baseline []wire.ChangeCounters // newest first, as the control plane reads it
	falsePositives := 0
	for day := 1; day <= cfg.days; day++ {
		if _, err := dataset.Change(root, cfg.seed+uint64(day)*101, cfg.change); err != nil {
			return err
		}
		ch, err := b.backup(ctx)
		if err != nil {
			return err
		}
		c := counters(ch)
		v := ransomware.Judge(c, baseline, ransomware.Default)
		if v.Suspicious {
			falsePositives++
		} else {
			baseline = append([]wire.ChangeCounters{c}, baseline...)
		}
		row(fmt.Sprintf("normal day %d", day), c, v)
	}

	for day := 1; day <= cfg.days; day++ {
		if err := officeDay(root, cfg.seed+uint64(day)*131); err != nil {
			return err
		}
		ch, err := b.backup(ctx)
		if err != nil {
			return err
		}
		c := counters(ch)
		v := ransomware.Judge(c, baseline, ransomware.Default)
		if v.Suspicious {
			falsePositives++
		} else {
			baseline = append([]wire.ChangeCounters{c}, baseline...)
		}
		row(fmt.Sprintf("office day %d", day), c, v)
	}

	// Each ransomware run starts from the last normal point: the files it
	// encrypted are put back from a pristine copy afterwards.
	pristine := filepath.Join(work, "pristine")
	if err := copyTree(root, pristine); err != nil {
		return err
	}
	normal := b.parent
	type tally struct{ fired, runs int }
	results := map[string]*tally{}
	var order []string
	for _, frac := range cfg.fractions {
		for _, ext := range []string{"", ".locked"} {
			name := fmt.Sprintf("%.0f%% encrypted in place", 100*frac)
			if ext != "" {
				name = fmt.Sprintf("%.0f%% encrypted, renamed to %s", 100*frac, ext)
			}
			order = append(order, name)
			results[name] = &tally{}
			for trial := range cfg.trials {
				done, err := dataset.Encrypt(root, cfg.seed+uint64(trial)*7919+uint64(frac*1000), frac, ext)
				if err != nil {
					return err
				}
				b.parent = normal
				ch, err := b.backup(ctx)
				if err != nil {
					return err
				}
				c := counters(ch)
				v := ransomware.Judge(c, baseline, ransomware.Default)
				results[name].runs++
				if v.Suspicious {
					results[name].fired++
				}
				if trial == 0 {
					row(name, c, v)
				}
				if err := revert(root, pristine, done, ext); err != nil {
					return err
				}
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- Normal days: **%d false positive(s)** in %d backups.\n", falsePositives, 2*cfg.days)
	for _, name := range order {
		r := results[name]
		fmt.Fprintf(w, "- %s: fired **%d of %d** runs.\n", name, r.fired, r.runs)
	}
	fmt.Fprintln(w)
	return nil
}

// revert puts encrypted files back from the pristine copy, with their times.
func revert(root, pristine string, rels []string, ext string) error {
	for _, rel := range rels {
		to := filepath.Join(root, rel)
		if ext != "" {
			if err := os.Remove(to + ext); err != nil {
				return err
			}
		}
		if err := copyFile(filepath.Join(pristine, rel), to); err != nil {
			return err
		}
	}
	return nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, to)
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(to, fi.ModTime(), fi.ModTime())
}

// officeDay is a day of office work on top of the 1% edits: 0.5% of the
// files saved anew (every byte rewritten, at another size, as an editor
// saves), 0.4% as many new documents (a quarter of them PDFs, compressed
// content, in folders that may have had none), and 0.2% deleted. A tree of
// a few large files only gets the edits.
func officeDay(root string, seed uint64) error {
	if _, err := dataset.Change(root, seed, 0.01); err != nil {
		return err
	}
	var files, dirs []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, 5))
	text := func(n int) []byte {
		words := []string{"minutes ", "budget ", "client ", "invoice ", "meeting ", "quarter ", "the ", "and ", "\n"}
		var b []byte
		for len(b) < n {
			b = append(b, words[r.IntN(len(words))]...)
		}
		return b
	}
	for range len(files) / 200 {
		p := files[r.IntN(len(files))]
		fi, err := os.Stat(p)
		if err != nil {
			continue // deleted earlier today
		}
		if err := os.WriteFile(p, text(int(fi.Size())+100+r.IntN(4096)), 0o644); err != nil {
			return err
		}
	}
	for i := range len(files) / 250 {
		dir := dirs[r.IntN(len(dirs))]
		name, body := fmt.Sprintf("note-%d-%d.txt", seed, i), text(1000+r.IntN(20000))
		if i%4 == 0 {
			name, body = fmt.Sprintf("scan-%d-%d.pdf", seed, i), make([]byte, 50000+r.IntN(500000))
			for j := range body {
				body[j] = byte(r.Uint32())
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			return err
		}
	}
	for range len(files) / 500 {
		os.Remove(files[r.IntN(len(files))]) // a repeat pick is already gone
	}
	return nil
}
