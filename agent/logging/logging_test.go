package logging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

// noOSLog keeps tests off the machine's syslog/journal/Event Log.
func noOSLog(t *testing.T) {
	t.Helper()
	old := openOSLog
	openOSLog = func(slog.Leveler) (slog.Handler, io.Closer) { return nil, nil }
	t.Cleanup(func() { openOSLog = old })
}

// logFiles lists the log folder's files, sorted.
func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestRotation(t *testing.T) {
	const line = "record %04d padded to a fixed length.....\n" // 42 bytes
	lineLen := int64(len(fmt.Sprintf(line, 0)))
	tests := []struct {
		name     string
		maxBytes int64
		maxFiles int
		writes   int
		want     []string
	}{
		{"no rotation yet", 10 * lineLen, 3, 10, []string{"coffer.log"}},
		{"one rotation", 10 * lineLen, 3, 11, []string{"coffer.log", "coffer.log.1"}},
		{"oldest dropped", 10 * lineLen, 3, 100, []string{"coffer.log", "coffer.log.1", "coffer.log.2"}},
		{"five files", 3 * lineLen, 5, 100, []string{"coffer.log", "coffer.log.1", "coffer.log.2", "coffer.log.3", "coffer.log.4"}},
		{"single file", 3 * lineLen, 1, 100, []string{"coffer.log"}},
		{"limit not a multiple of the line", 3*lineLen + 5, 2, 100, []string{"coffer.log", "coffer.log.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := OpenRotatingFile(dir, tt.maxBytes, tt.maxFiles)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.writes {
				if _, err := fmt.Fprintf(w, line, i); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := logFiles(t, dir); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("files = %v, want %v", got, tt.want)
			}
			// Newest in coffer.log, then .1, .2, … each older, none over the limit.
			next := tt.writes
			for _, name := range tt.want {
				path := filepath.Join(dir, name)
				if fi, _ := os.Stat(path); fi.Size() > tt.maxBytes {
					t.Errorf("%s is %d bytes, over the %d limit", name, fi.Size(), tt.maxBytes)
				}
				lines := readLines(t, path)
				for j := len(lines) - 1; j >= 0; j-- {
					next--
					if want := strings.TrimSuffix(fmt.Sprintf(line, next), "\n"); lines[j] != want {
						t.Fatalf("%s line %d = %q, want %q", name, j, lines[j], want)
					}
				}
			}
		})
	}
}

func TestRotationAppendsToExistingFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("old 1234\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := OpenRotatingFile(dir, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// 9 existing bytes + 9 new would pass 16, so the old file rotates away.
	if _, err := io.WriteString(w, "new 1234\n"); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, filepath.Join(dir, FileName+".1")); got[0] != "old 1234" {
		t.Errorf("coffer.log.1 = %q, want the old content", got)
	}
	if got := readLines(t, filepath.Join(dir, FileName)); got[0] != "new 1234" {
		t.Errorf("coffer.log = %q, want the new content", got)
	}
}

func TestWriteAfterClose(t *testing.T) {
	w, err := OpenRotatingFile(t.TempDir(), 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := io.WriteString(w, "x\n"); err == nil {
		t.Error("write after Close succeeded")
	}
}

func TestConcurrentWritersWriteWholeLines(t *testing.T) {
	noOSLog(t)
	dir := t.TempDir()
	// Small files, enough of them to keep everything: rotation happens under
	// contention and nothing is dropped.
	log, closer, err := New(Options{Dir: dir, MaxBytes: 16 << 10, MaxFiles: 200, JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				log.Info("backed up", "writer", g, "i", i, "path", strings.Repeat("p", 50+g*7))
			}
		})
	}
	wg.Wait()
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[[2]int]bool{}
	names := logFiles(t, dir)
	if len(names) < 10 || len(names) == 200 {
		t.Fatalf("%d files: want several rotations and none dropped", len(names))
	}
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var rec struct {
				Msg       string
				Writer, I int
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Msg != "backed up" {
				t.Fatalf("%s: partial or mixed line %q: %v", name, sc.Text(), err)
			}
			seen[[2]int{rec.Writer, rec.I}] = true
		}
		f.Close()
	}
	if len(seen) != writers*each {
		t.Errorf("found %d distinct records, want %d", len(seen), writers*each)
	}
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows files have ACLs, not Unix modes")
	}
	noOSLog(t)
	dir := filepath.Join(t.TempDir(), "logs")
	log, closer, err := New(Options{Dir: dir, MaxBytes: 100, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		log.Info("restored", "path", "/home/alice/secret-plans.txt")
	}
	closer.Close()
	check := func(path string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", path, got, want)
		}
	}
	check(dir, 0o700)
	names := logFiles(t, dir)
	if len(names) != 3 {
		t.Fatalf("files = %v, want 3", names)
	}
	for _, n := range names {
		check(filepath.Join(dir, n), 0o600)
	}
}

func TestExistingLooseFileIsTightened(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows files have ACLs, not Unix modes")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := OpenRotatingFile(dir, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestNewOptions(t *testing.T) {
	noOSLog(t)
	tests := []struct {
		name    string
		o       Options
		wantErr string
		check   func(t *testing.T, dir string, log *slog.Logger)
	}{
		{name: "no folder", o: Options{}, wantErr: "no log folder"},
		{name: "text at info by default", check: func(t *testing.T, dir string, log *slog.Logger) {
			log.Debug("hidden")
			log.Info("shown", "k", "v w")
			got := readLines(t, filepath.Join(dir, FileName))
			if len(got) != 1 || !strings.Contains(got[0], `msg=shown k="v w"`) {
				t.Errorf("file = %q", got)
			}
		}},
		{name: "json at debug", o: Options{JSON: true, Level: slog.LevelDebug}, check: func(t *testing.T, dir string, log *slog.Logger) {
			log.Debug("shown")
			got := readLines(t, filepath.Join(dir, FileName))
			if len(got) != 1 || !json.Valid([]byte(got[0])) || !strings.Contains(got[0], `"level":"DEBUG"`) {
				t.Errorf("file = %q", got)
			}
		}},
		{name: "defaults to 10 MiB", check: func(t *testing.T, dir string, log *slog.Logger) {
			log.Info(strings.Repeat("x", 1<<20))
			log.Info(strings.Repeat("x", 1<<20))
			if n := len(logFiles(t, dir)); n != 1 {
				t.Errorf("2 MiB rotated into %d files", n)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := ""
			if tt.wantErr == "" {
				dir = t.TempDir()
			}
			tt.o.Dir = dir
			log, closer, err := New(tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			tt.check(t, dir, log)
		})
	}
}

func TestNewAlsoWritesTheOSLog(t *testing.T) {
	var got []string
	var gotLevel slog.Leveler
	old := openOSLog
	openOSLog = func(l slog.Leveler) (slog.Handler, io.Closer) {
		gotLevel = l
		return newSinkHandler(l, func(l slog.Level, m string) error {
			got = append(got, l.String()+" "+m)
			return nil
		}), nil
	}
	t.Cleanup(func() { openOSLog = old })

	dir := t.TempDir()
	log, closer, err := New(Options{Dir: dir, Level: slog.LevelDebug})
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("file only")
	log.Warn("both", "n", 1)
	closer.Close()
	if gotLevel.Level() != slog.LevelInfo {
		t.Errorf("OS log level = %v, want INFO even when the file logs debug", gotLevel)
	}
	if want := []string{"WARN both n=1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("OS log got %q, want %q", got, want)
	}
	if n := len(readLines(t, filepath.Join(dir, FileName))); n != 2 {
		t.Errorf("file has %d lines, want 2", n)
	}
}

// recorder is a handler that keeps what it is given.
type recorder struct {
	level  slog.Level
	prefix string
	mu     *sync.Mutex
	got    *[]string
}

func newRecorder(level slog.Level) *recorder {
	return &recorder{level: level, mu: &sync.Mutex{}, got: new([]string)}
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	s := r.prefix + rec.Message
	rec.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	r.mu.Lock()
	*r.got = append(*r.got, s)
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	for _, a := range as {
		c.prefix += a.String() + " "
	}
	return &c
}
func (r *recorder) WithGroup(name string) slog.Handler {
	c := *r
	c.prefix += name + ": "
	return &c
}

func TestFanout(t *testing.T) {
	tests := []struct {
		name      string
		log       func(*slog.Logger)
		wantDebug []string
		wantWarn  []string
	}{
		{"each record to each handler", func(l *slog.Logger) { l.Error("e", "k", 1) }, []string{"e k=1"}, []string{"e k=1"}},
		{"levels respected", func(l *slog.Logger) { l.Debug("d"); l.Info("i"); l.Warn("w") }, []string{"d", "i", "w"}, []string{"w"}},
		{"attrs reach every handler", func(l *slog.Logger) { l.With("job", "nightly").Warn("w") }, []string{"job=nightly w"}, []string{"job=nightly w"}},
		{"groups reach every handler", func(l *slog.Logger) { l.WithGroup("g").Info("i") }, []string{"g: i"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, w := newRecorder(slog.LevelDebug), newRecorder(slog.LevelWarn)
			tt.log(slog.New(Fanout(d, w)))
			if fmt.Sprint(*d.got) != fmt.Sprint(tt.wantDebug) {
				t.Errorf("debug handler got %q, want %q", *d.got, tt.wantDebug)
			}
			if fmt.Sprint(*w.got) != fmt.Sprint(tt.wantWarn) {
				t.Errorf("warn handler got %q, want %q", *w.got, tt.wantWarn)
			}
		})
	}
}

func TestFanoutEnabled(t *testing.T) {
	f := Fanout(newRecorder(slog.LevelWarn), newRecorder(slog.LevelError))
	for l, want := range map[slog.Level]bool{slog.LevelInfo: false, slog.LevelWarn: true, slog.LevelError: true} {
		if got := f.Enabled(context.Background(), l); got != want {
			t.Errorf("Enabled(%v) = %v, want %v", l, got, want)
		}
	}
}

func TestSinkHandlerFormat(t *testing.T) {
	var got []string
	h := newSinkHandler(slog.LevelInfo, func(l slog.Level, m string) error {
		got = append(got, l.String()+"|"+m)
		return nil
	})
	log := slog.New(h)
	log.Debug("dropped")
	log.Info("plain")
	log.With("job", "n 1").WithGroup("stats").Error("failed", "files", 3)
	want := []string{"INFO|plain", `ERROR|failed job="n 1" stats.files=3`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJournalSinkPriorities(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newSinkHandler(slog.LevelDebug, journalSink(&buf)))
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e")
	if want := "<7>d\n<6>i\n<4>w\n<3>e\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}
