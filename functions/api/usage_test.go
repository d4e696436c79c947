package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// fakeUsageHistory holds samples by machine ID, oldest first, and records
// the day each question started from.
type fakeUsageHistory struct {
	samples map[string][]wire.UsageSample
	asked   []string
}

func (f *fakeUsageHistory) Since(_ context.Context, machineID string, since time.Time) ([]wire.UsageSample, error) {
	from := since.UTC().Format(time.DateOnly)
	f.asked = append(f.asked, from)
	var out []wire.UsageSample
	for _, s := range f.samples[machineID] {
		if s.Day >= from {
			out = append(out, s)
		}
	}
	return out, nil
}

// usageServer is the harness's API with a storage history (or none).
func usageServer(h *harness, hist UsageStore) *cpclient.Client {
	e := New(Deps{Registry: h.reg, Points: h.points, PINs: h.pins, Nonces: &fakeNonces{seen: map[string]bool{}},
		Jobs: h.jobs, Alerts: h.alerts, SAS: fakeSAS{h.clock.Now}, Blobs: fakeBlobs{}, Auth: testTokens, Now: h.clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Approvals: h.apprs, Usage: hist})
	srv := httptest.NewServer(e)
	h.t.Cleanup(srv.Close)
	return &cpclient.Client{BaseURL: srv.URL, Token: testTokens[RoleReader]}
}

// A Reader reads a machine's storage over the last N days, today
// included (the harness's clock is 22 Nov 2026): 30 by default, 1 to 366
// when asked; anything else is a bad request, and a machine of another
// vault is not found. Without a history the answer is an empty list.
func TestMachineUsageHistory(t *testing.T) {
	h := newHarness(t)
	v, m, _ := h.vault(wire.MachineProtected)
	other, _, _ := h.vault(wire.MachineProtected)
	day := func(d string, b int64) wire.UsageSample {
		at, _ := time.Parse(time.DateOnly, d)
		return wire.UsageSample{Day: d, At: at, Bytes: b, Objects: 2, Packs: 1}
	}
	hist := &fakeUsageHistory{samples: map[string][]wire.UsageSample{m.ID: {
		day("2025-11-01", 1), day("2026-10-01", 10), day("2026-10-24", 24), day("2026-11-20", 20), day("2026-11-22", 22)}}}
	c := usageServer(h, hist)
	for _, tc := range []struct {
		name      string
		vault     string
		days      int // 0: no ?days=
		wantFrom  string
		wantBytes []int64
		wantErr   string
	}{
		{"the default 30 days", v.ID, 0, "2026-10-24", []int64{24, 20, 22}, ""},
		{"today only", v.ID, 1, "2026-11-22", []int64{22}, ""},
		{"three days", v.ID, 3, "2026-11-20", []int64{20, 22}, ""},
		{"a year and a day", v.ID, wire.MaxUsageDays, "2025-11-22", []int64{10, 24, 20, 22}, ""},
		{"too many days", v.ID, wire.MaxUsageDays + 1, "", nil, "400 bad_request"},
		{"another vault's machine", other.ID, 0, "", nil, "404 not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hist.asked = nil
			var got []wire.UsageSample
			var err error
			got, err = c.Usage(h.ctx(), tc.vault, m.ID, tc.days)
			if tc.wantErr != "" {
				if status(err) != tc.wantErr {
					t.Fatalf("answer %s, want %s", status(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(hist.asked) != 1 || hist.asked[0] != tc.wantFrom {
				t.Fatalf("asked from %v, want %s", hist.asked, tc.wantFrom)
			}
			var bytes []int64
			for _, s := range got {
				bytes = append(bytes, s.Bytes)
			}
			if !slices.Equal(bytes, tc.wantBytes) {
				t.Fatalf("bytes %v, want %v", bytes, tc.wantBytes)
			}
		})
	}

	// Days the client cannot send: not a number, zero, negative.
	for _, q := range []string{"abc", "0", "-1", "1.5"} {
		req, _ := http.NewRequestWithContext(h.ctx(), http.MethodGet, c.BaseURL+wire.Version+"/vaults/"+v.ID+"/machines/"+m.ID+"/usage?days="+q, nil)
		req.Header.Set("Authorization", "Bearer "+testTokens[RoleReader])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("days=%s: %d, want 400", q, resp.StatusCode)
		}
	}

	none, err := usageServer(h, nil).Usage(h.ctx(), v.ID, m.ID, 0)
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("without a history: %v %v, want an empty list", none, err)
	}
}
