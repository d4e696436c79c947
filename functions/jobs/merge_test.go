package jobs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/shared/wire"
)

func TestSplitUTF16KeepsRunesWhole(t *testing.T) {
	for _, s := range []string{"", "abc", "a😀b😀c", strings.Repeat("😀", 10), strings.Repeat("é", 7)} {
		for n := 2; n <= 5; n++ {
			parts := splitUTF16(s, n)
			if strings.Join(parts, "") != s {
				t.Fatalf("split(%q, %d) = %q", s, n, parts)
			}
			for _, p := range parts {
				if p == "" || utf16Len(p) > n || !utf8.ValidString(p) {
					t.Fatalf("split(%q, %d): bad part %q", s, n, p)
				}
			}
		}
	}
}

func TestTruncation(t *testing.T) {
	path := "/very/" + strings.Repeat("deep/", 2000) + "file.txt"
	r, err := checkReport(wire.JobReport{Status: wire.StatusInProgress,
		Message: strings.Repeat("m", MaxMessageRunes+10),
		Skipped: []wire.Skipped{{Path: path, Reason: strings.Repeat("r", 1000)}}})
	if err != nil {
		t.Fatal(err)
	}
	sk := r.Skipped[0]
	if n := utf8.RuneCountInString(sk.Path); n != MaxPathRunes || !strings.HasSuffix(sk.Path, "/file.txt") || !strings.HasPrefix(sk.Path, "…") {
		t.Fatalf("path kept %d runes: %.30q…", n, sk.Path)
	}
	if utf8.RuneCountInString(sk.Reason) != MaxReasonRunes || utf8.RuneCountInString(r.Message) != MaxMessageRunes {
		t.Fatal("reason or message not cut to its bound")
	}
}

// The worst case the budget allows still fits Table storage's limits:
// every chunk under 64 KiB and the whole entity well under 1 MiB.
func TestEncodedJobFitsTableLimits(t *testing.T) {
	rec := &record{job: wire.Job{ID: "7fffffffffffffff-00000000", VaultID: "v", MachineID: "m", Status: wire.StatusInProgress,
		StartedAt: time.Now(), UpdatedAt: time.Now()}}
	// Astral-plane paths: 2 UTF-16 units per rune, the densest case.
	var add []wire.Skipped
	for i := range 2000 {
		add = append(add, wire.Skipped{Path: strings.Repeat("😀", MaxPathRunes-10) + string(rune('a'+i%26)) + strings.Repeat("x", i%7), Reason: strings.Repeat("\"", MaxReasonRunes)})
	}
	r, err := checkReport(wire.JobReport{Status: wire.StatusInProgress, Skipped: add, Message: strings.Repeat("😀", MaxMessageRunes)})
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(rec, r, time.Now()); err != nil {
		t.Fatal(err)
	}
	b, err := encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	// The request body is UTF-8 JSON; as UTF-16 each unit is 2 bytes.
	if size := 2 * utf16Len(string(b)); size > 900<<10 {
		t.Fatalf("entity is %d bytes as UTF-16", size)
	}
	var props map[string]any
	if err := json.Unmarshal(b, &props); err != nil {
		t.Fatal(err)
	}
	for k, v := range props {
		if s, ok := v.(string); ok && utf16Len(s) > 32<<10 {
			t.Fatalf("property %s is %d UTF-16 units, over 64 KiB", k, utf16Len(s))
		}
	}
	back, _, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.job.Skipped) != len(rec.job.Skipped) || back.skippedMore != rec.skippedMore || rec.skippedMore == 0 {
		t.Fatalf("round trip: %d listed + %d more, want %d + %d", len(back.job.Skipped), back.skippedMore, len(rec.job.Skipped), rec.skippedMore)
	}
}

func TestInvertedTimeSortsNewestFirst(t *testing.T) {
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), // clamped to 1970
		time.Unix(0, 0),
		time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 20, 9, 0, 0, 1000, time.UTC),
		time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), // clamped to 2262
	}
	for i := 1; i < len(times); i++ {
		a, b := invertedHex(times[i-1]), invertedHex(times[i])
		if len(a) != idHexLen || len(b) != idHexLen || b > a || b == a && i != 1 {
			t.Fatalf("%v -> %s, %v -> %s: newer must sort first", times[i-1], a, times[i], b)
		}
	}
}
