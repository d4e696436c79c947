package alerts

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/shared/wire"
)

func failedJob(vault, machine string) wire.Alert {
	return wire.Alert{
		VaultID: vault, VaultName: "Contoso ROBO",
		MachineID: machine, MachineName: "branch-01", JobID: "job-42",
		Severity: wire.SeverityCritical, Kind: wire.AlertJobFailed,
		Title:  "Backup failed on branch-01",
		Detail: "The backup stopped: the disk D: was not found.\nReconnect the disk, then run the backup again.",
	}
}

func published(t *testing.T, tbl *aztables.Client, a wire.Alert) bool {
	t.Helper()
	resp, err := tbl.GetEntity(testContext(t, 10*time.Second), a.VaultID, a.ID, nil)
	if err != nil {
		t.Fatalf("read row %s: %v", a.ID, err)
	}
	_, pub, err := fromEntity(resp.Value)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestRaiseStoresListsAndPublishesTheSameJSON(t *testing.T) {
	c := sbClient(t)
	sender, err := c.NewSender("alerts", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, clk, tbl := newStore(t, sender)
	receiver, err := c.NewReceiverForQueue("alerts", nil)
	if err != nil {
		t.Fatal(err)
	}

	in := failedJob("contoso-robo", "m-01")
	in.ID, in.Acknowledged = "caller-chosen", true // the server decides these
	got, err := s.Raise(testContext(t, 30*time.Second), in)
	if err != nil {
		t.Fatalf("Raise: %v", err)
	}
	if !ValidID(got.ID) || got.ID == in.ID || !got.RaisedAt.Equal(clk.Now()) || got.Acknowledged {
		t.Fatalf("raised %+v: want a new ID, RaisedAt %v and not acknowledged", got, clk.Now())
	}
	if !published(t, tbl, got) {
		t.Error("row not marked published after a successful send")
	}

	list, err := s.List(testContext(t, 10*time.Second), "contoso-robo", Filter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 || !reflect.DeepEqual(list[0], got) {
		t.Fatalf("List = %+v, want [%+v]", list, got)
	}
	one, err := s.Get(testContext(t, 10*time.Second), "contoso-robo", got.ID)
	if err != nil || !reflect.DeepEqual(one, got) {
		t.Fatalf("Get = %+v, %v", one, err)
	}

	m := receiveByID(t, receiver, got.ID)
	if m.ContentType == nil || *m.ContentType != "application/json" {
		t.Errorf("ContentType = %v", m.ContentType)
	}
	want, _ := json.Marshal(got)
	if string(m.Body) != string(want) {
		t.Errorf("message body\n%s\nwant\n%s", m.Body, want)
	}
	decoded, err := DecodeMessage(m.Body)
	if err != nil || !reflect.DeepEqual(decoded, got) {
		t.Errorf("DecodeMessage(body) = %+v, %v", decoded, err)
	}
}

func TestRaiseDuringAnOutageIsRepublishedExactlyOnce(t *testing.T) {
	c := sbClient(t)
	sender, err := c.NewSender("alerts", nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := &switchPublisher{down: true, next: sender}
	s, clk, tbl := newStore(t, pub)
	ctx := testContext(t, time.Minute)

	got, err := s.Raise(ctx, failedJob("contoso-robo", "m-01"))
	if !errors.Is(err, ErrNotPublished) {
		t.Fatalf("Raise during an outage: err = %v, want ErrNotPublished", err)
	}
	if got.ID == "" || published(t, tbl, got) {
		t.Fatalf("want the stored alert back, unpublished; got %+v", got)
	}
	if stored, err := s.Get(ctx, got.VaultID, got.ID); err != nil || !reflect.DeepEqual(stored, got) {
		t.Fatalf("Get = %+v, %v; the alert must be stored", stored, err)
	}

	// Still down once it is old enough: nothing sent, the error says so.
	clk.Advance(RepublishAfter + time.Second)
	if n, err := s.Republish(ctx); n != 0 || err == nil {
		t.Fatalf("Republish while down = %d, %v; want 0 and an error", n, err)
	}

	pub.setDown(false)
	clk.Advance(-RepublishAfter) // back to a moment a Raise could still be running
	if n, err := s.Republish(ctx); n != 0 || err != nil {
		t.Fatalf("Republish of a fresh alert = %d, %v; want 0: Raise may still be sending it", n, err)
	}
	clk.Advance(RepublishAfter)
	if n, err := s.Republish(ctx); n != 1 || err != nil {
		t.Fatalf("Republish = %d, %v; want 1", n, err)
	}
	if n, err := s.Republish(ctx); n != 0 || err != nil {
		t.Fatalf("second Republish = %d, %v; want 0", n, err)
	}
	if !published(t, tbl, got) {
		t.Error("row still unpublished after Republish")
	}

	receiver, err := c.NewReceiverForQueue("alerts", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receiveByID(t, receiver, got.ID)
	if a, err := DecodeMessage(m.Body); err != nil || !reflect.DeepEqual(a, got) {
		t.Fatalf("republished message = %+v, %v; want %+v", a, err, got)
	}
	peeked, err := receiver.PeekMessages(ctx, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peeked {
		if p.MessageID == got.ID {
			t.Fatal("a second copy of the alert is on the queue")
		}
	}
	if pub.sent[got.ID] != 1 {
		t.Fatalf("sent %d times, want exactly once", pub.sent[got.ID])
	}
}

func TestListFilters(t *testing.T) {
	s, clk, _ := newStore(t, &okPublisher{})
	ctx := testContext(t, time.Minute)
	raise := func(vault, machine, sev, kind string) wire.Alert {
		t.Helper()
		clk.Advance(time.Minute)
		a, err := s.Raise(ctx, wire.Alert{VaultID: vault, MachineID: machine, Severity: sev, Kind: kind, Title: kind + " on " + machine})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a1 := raise("v1", "m-1", wire.SeverityCritical, wire.AlertJobFailed)
	a2 := raise("v1", "m-2", wire.SeverityWarning, wire.AlertJobWarnings)
	a3 := raise("v1", "m-1", wire.SeverityWarning, wire.AlertMissedBackup)
	a4 := raise("v1", "m-2", wire.SeverityCritical, wire.AlertCriticalOperation)
	a5 := raise("v1", "m-1", wire.SeverityCritical, wire.AlertJobFailed)
	other := raise("v2", "m-1", wire.SeverityCritical, wire.AlertJobFailed)
	if _, err := s.Acknowledge(ctx, "v1", a4.ID, "ops@contoso.example"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		vault string
		f     Filter
		want  []wire.Alert
	}{
		{"all, newest first", "v1", Filter{}, []wire.Alert{a5, a4, a3, a2, a1}},
		{"other vault", "v2", Filter{}, []wire.Alert{other}},
		{"unknown vault", "v3", Filter{}, nil},
		{"machine", "v1", Filter{MachineID: "m-2"}, []wire.Alert{a4, a2}},
		{"severity", "v1", Filter{Severity: wire.SeverityCritical}, []wire.Alert{a5, a4, a1}},
		{"kind", "v1", Filter{Kind: wire.AlertJobFailed}, []wire.Alert{a5, a1}},
		{"unacknowledged", "v1", Filter{Unacknowledged: true}, []wire.Alert{a5, a3, a2, a1}},
		{"since is inclusive", "v1", Filter{Since: a3.RaisedAt}, []wire.Alert{a5, a4, a3}},
		{"since between alerts", "v1", Filter{Since: a3.RaisedAt.Add(time.Nanosecond)}, []wire.Alert{a5, a4}},
		{"since in the future", "v1", Filter{Since: clk.Now().Add(time.Hour)}, nil},
		{"since long ago", "v1", Filter{Since: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)}, []wire.Alert{a5, a4, a3, a2, a1}},
		{"limit", "v1", Filter{Limit: 2}, []wire.Alert{a5, a4}},
		{"combined", "v1", Filter{MachineID: "m-1", Severity: wire.SeverityCritical, Unacknowledged: true, Limit: 1}, []wire.Alert{a5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.List(ctx, tc.vault, tc.f)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if ids(got) != ids(tc.want) {
				t.Fatalf("got %s\nwant %s", ids(got), ids(tc.want))
			}
		})
	}
}

func ids(as []wire.Alert) string {
	var b []string
	for _, a := range as {
		b = append(b, a.Title+"@"+a.RaisedAt.Format("15:04"))
	}
	return "[" + strings.Join(b, ", ") + "]"
}

func TestAcknowledge(t *testing.T) {
	s, clk, _ := newStore(t, &okPublisher{})
	ctx := testContext(t, time.Minute)
	a, err := s.Raise(ctx, failedJob("contoso-robo", "m-01"))
	if err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Hour)
	ackAt := clk.Now()
	got, err := s.Acknowledge(ctx, a.VaultID, a.ID, "alice@contoso.example")
	if err != nil {
		t.Fatalf("Acknowledge: %v", err)
	}
	if !got.Acknowledged || got.AcknowledgedBy != "alice@contoso.example" || got.AcknowledgedAt == nil || !got.AcknowledgedAt.Equal(ackAt) {
		t.Fatalf("acknowledged = %+v", got)
	}
	if stored, _ := s.Get(ctx, a.VaultID, a.ID); !reflect.DeepEqual(stored, got) {
		t.Fatalf("stored %+v, returned %+v", stored, got)
	}

	// Again, later, by someone else: the first acknowledgement stands.
	clk.Advance(time.Hour)
	again, err := s.Acknowledge(ctx, a.VaultID, a.ID, "bob@contoso.example")
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("second Acknowledge = %+v, %v; want the first one unchanged", again, err)
	}

	if _, err := s.Acknowledge(ctx, a.VaultID, "9999-missing", "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("acknowledge a missing alert: %v, want ErrNotFound", err)
	}
	if _, err := s.Acknowledge(ctx, a.VaultID, a.ID, " \r\n"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("acknowledge by nobody: %v, want ErrInvalid", err)
	}
}

func TestConcurrentAcknowledgementsAgree(t *testing.T) {
	s, _, _ := newStore(t, &okPublisher{})
	ctx := testContext(t, time.Minute)
	a, err := s.Raise(ctx, failedJob("contoso-robo", "m-01"))
	if err != nil {
		t.Fatal(err)
	}
	// Without the ETag check each caller would overwrite the other and be
	// told it won; with it, every caller reports the one stored result.
	var wg sync.WaitGroup
	results := make([]wire.Alert, 8)
	errs := make([]error, len(results))
	for i := range results {
		wg.Go(func() { results[i], errs[i] = s.Acknowledge(ctx, a.VaultID, a.ID, "user-"+string(rune('a'+i))) })
	}
	wg.Wait()
	stored, err := s.Get(ctx, a.VaultID, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !reflect.DeepEqual(results[i], stored) {
			t.Fatalf("caller %d was told %q acknowledged; the row says %q", i, results[i].AcknowledgedBy, stored.AcknowledgedBy)
		}
	}
}

func TestBadIDsAreRefused(t *testing.T) {
	s, _, _ := newStore(t, &okPublisher{})
	ctx := testContext(t, time.Minute)
	bad := []string{"", "Contoso", "a'b", "x' or PartitionKey ne '", "a b", "a/b", "a_b", "é", strings.Repeat("a", MaxIDLen+1)}
	for _, id := range bad {
		ops := map[string]func() error{
			"List vault":        func() error { _, err := s.List(ctx, id, Filter{}); return err },
			"List machine":      func() error { _, err := s.List(ctx, "v1", Filter{MachineID: id}); return err },
			"Get vault":         func() error { _, err := s.Get(ctx, id, "abc"); return err },
			"Get alert":         func() error { _, err := s.Get(ctx, "v1", id); return err },
			"Acknowledge vault": func() error { _, err := s.Acknowledge(ctx, id, "abc", "me"); return err },
			"Acknowledge alert": func() error { _, err := s.Acknowledge(ctx, "v1", id, "me"); return err },
			"Raise vault": func() error {
				_, err := s.Raise(ctx, wire.Alert{VaultID: id, Severity: wire.SeverityWarning, Kind: wire.AlertMissedBackup, Title: "x"})
				return err
			},
		}
		if id != "" { // an empty machine is allowed on an alert
			ops["Raise machine"] = func() error {
				_, err := s.Raise(ctx, wire.Alert{VaultID: "v1", MachineID: id, Severity: wire.SeverityWarning, Kind: wire.AlertMissedBackup, Title: "x"})
				return err
			}
		}
		for name, op := range ops {
			if name == "List machine" && id == "" {
				continue // an empty filter value means no filter
			}
			if err := op(); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s %q: err = %v, want ErrInvalid", name, id, err)
			}
		}
	}
	for _, f := range []Filter{{Severity: "fatal"}, {Kind: "job_failed' or true"}} {
		if _, err := s.List(ctx, "v1", f); !errors.Is(err, ErrInvalid) {
			t.Errorf("List(%+v): err = %v, want ErrInvalid", f, err)
		}
	}
	if list, err := s.List(ctx, "v1", Filter{}); err != nil || len(list) != 0 {
		t.Fatalf("nothing may have been stored by refused calls: %d rows, %v", len(list), err)
	}
}

func TestRaiseTidiesTextAndRefusesUnknownValues(t *testing.T) {
	pub := &okPublisher{}
	s, _, _ := newStore(t, pub)
	ctx := testContext(t, time.Minute)

	a, err := s.Raise(ctx, wire.Alert{
		VaultID: "v1", Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
		Title:     "Security PIN used\r\nBcc: victim@example.com",
		Detail:    "line one\r\nline two\x00\x1b[31m" + strings.Repeat("é", MaxDetailLen),
		VaultName: "Contoso\nROBO",
	})
	if err != nil {
		t.Fatalf("Raise: %v", err)
	}
	if a.Title != "Security PIN used Bcc: victim@example.com" || a.VaultName != "Contoso ROBO" {
		t.Errorf("title %q, vault name %q: want one line each", a.Title, a.VaultName)
	}
	if !strings.HasPrefix(a.Detail, "line one\nline two[31m") || !strings.HasSuffix(a.Detail, "(truncated)") || len(a.Detail) > MaxDetailLen {
		t.Errorf("detail not tidied: %q…", a.Detail[:40])
	}
	if _, err := DecodeMessage(pub.msgs[0].Body); err != nil {
		t.Errorf("the published message must decode: %v", err)
	}

	for _, in := range []wire.Alert{
		{VaultID: "v1", Severity: "fatal", Kind: wire.AlertJobFailed, Title: "x"},
		{VaultID: "v1", Severity: wire.SeverityCritical, Kind: "disk_full", Title: "x"},
		{VaultID: "v1", Severity: wire.SeverityCritical, Kind: wire.AlertJobFailed, Title: " \n "},
	} {
		if _, err := s.Raise(ctx, in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Raise(%+v): err = %v, want ErrInvalid", in, err)
		}
	}
	if len(pub.msgs) != 1 {
		t.Fatalf("published %d messages, want only the valid one", len(pub.msgs))
	}
}
