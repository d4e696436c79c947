package mailer

import (
	"encoding/json"
	"errors"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/shared/wire"
)

func TestNewValidatesConfig(t *testing.T) {
	ok := Config{Host: "smtp.contoso.example", From: "Coffer <alerts@contoso.example>"}
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		wantErr string // "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"implicit TLS", func(c *Config) { c.Security = "TLS" }, ""},
		{"clear text on loopback", func(c *Config) { c.Host, c.Security = "127.0.0.1", "none" }, ""},
		{"clear text on localhost", func(c *Config) { c.Host, c.Security = "localhost", "none" }, ""},
		{"clear text elsewhere", func(c *Config) { c.Security = "none" }, "clear text"},
		{"no host", func(c *Config) { c.Host = "" }, "SMTP host"},
		{"host with a space", func(c *Config) { c.Host = "smtp example" }, "SMTP host"},
		{"unknown security", func(c *Config) { c.Security = "ssl" }, "unknown"},
		{"port out of range", func(c *Config) { c.Port = 70000 }, "out of range"},
		{"username without password", func(c *Config) { c.Username = "mailer" }, "go together"},
		{"password without username", func(c *Config) { c.Password = "s3cret" }, "go together"},
		{"line break in password", func(c *Config) { c.Username, c.Password = "mailer", "a\r\nb" }, "line breaks"},
		{"no sender", func(c *Config) { c.From = "" }, "sender address"},
		{"bad sender", func(c *Config) { c.From = "alerts at contoso" }, "sender address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.change(&cfg)
			_, err := New(cfg, &vaults{}, offlineTable(t), nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New: err = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
	if _, err := New(ok, nil, offlineTable(t), nil); err == nil {
		t.Error("New without recipients lookup: no error")
	}
	if _, err := New(ok, &vaults{}, nil, nil); err == nil {
		t.Error("New without a digests table: no error")
	}
	if m, err := New(ok, &vaults{}, offlineTable(t), nil); err != nil || m.addr != "smtp.contoso.example:587" {
		t.Errorf("default STARTTLS port: %v", err)
	}
}

// tlsSink is a relay that needs STARTTLS and AUTH PLAIN, like Office 365's.
func tlsSink(t *testing.T, o smtpsink.Options) (*smtpsink.Sink, Config) {
	t.Helper()
	c := testCert(t)
	o.TLS, o.Username, o.Password = c.ServerTLS(), "mailer", "s3cret"
	s := startSink(t, o)
	cfg := Config{Host: s.Host(), Port: port(t, s), Username: "mailer", Password: "s3cret",
		From: "Coffer <alerts@contoso.example>", TLSConfig: c.ClientTLS()}
	if o.ImplicitTLS {
		cfg.Security = SecurityTLS
	}
	return s, cfg
}

func decodeBody(t *testing.T, m smtpsink.Message) string {
	t.Helper()
	if got := m.Header.Get("Content-Transfer-Encoding"); got != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding = %q", got)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.Body)))
	if err != nil {
		t.Fatalf("body is not quoted-printable: %v", err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

func TestAlertEmailOverStartTLSWithAuth(t *testing.T) {
	sink, cfg := tlsSink(t, smtpsink.Options{})
	clk := newClock()
	reg := &vaults{to: map[string][]string{"contoso-robo": {"Ops Team <ops@contoso.example>", "it@contoso.example", "OPS@contoso.example"}}}
	m, err := New(cfg, reg, readyTable(t), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	raised := time.Date(2026, 11, 22, 9, 12, 30, 0, time.UTC)
	a := alert("9001-abc", "contoso-robo", raised, wire.SeverityCritical, wire.AlertJobFailed, "Backup failed on branch-01")
	a.VaultName = "contoso-robo"
	if err := m.HandleAlert(testContext(t, 30*time.Second), body(t, a)); err != nil {
		t.Fatalf("HandleAlert: %v", err)
	}
	got := sink.Messages()
	if len(got) != 1 {
		t.Fatalf("sink holds %d messages, want 1", len(got))
	}
	msg := got[0]
	if !msg.TLS || msg.AuthUser != "mailer" {
		t.Errorf("TLS=%v user=%q: want STARTTLS and AUTH as mailer", msg.TLS, msg.AuthUser)
	}
	if msg.From != "alerts@contoso.example" || strings.Join(msg.To, ",") != "ops@contoso.example,it@contoso.example" {
		t.Errorf("envelope %s -> %v: want both recipients once each", msg.From, msg.To)
	}
	for k, want := range map[string]string{
		"Subject":        "[Coffer] CRITICAL: Backup failed on branch-01 (vault contoso-robo)",
		"Date":           clk.Now().Format(time.RFC1123Z),
		"From":           `"Coffer" <alerts@contoso.example>`,
		"To":             "ops@contoso.example, it@contoso.example",
		"Message-Id":     "<alert.9001-abc@contoso.example>",
		"Mime-Version":   "1.0",
		"Content-Type":   "text/plain; charset=utf-8",
		"X-Coffer-Alert": "9001-abc",
		"Auto-Submitted": "auto-generated",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if msg.Subject != "[Coffer] CRITICAL: Backup failed on branch-01 (vault contoso-robo)" {
		t.Errorf("decoded subject %q", msg.Subject)
	}
	text := decodeBody(t, msg)
	for _, want := range []string{
		"Reconnect the disk, then run the backup again.", // what happened, from the alert
		"Sunday 22 November 2026, 09:12:30 UTC",          // when, UTC
		"2026-11-22T09:12:30Z",                           // and ISO 8601
		"branch-01 (m-01)", "job-42", "9001-abc",
		"fix the cause on the machine", // what to do
	} {
		if !strings.Contains(text, want) {
			t.Errorf("body lacks %q:\n%s", want, text)
		}
	}
}

func TestAlertEmailInUTF8(t *testing.T) {
	sink, cfg := tlsSink(t, smtpsink.Options{})
	reg := &vaults{to: map[string][]string{"v1": {"ops@contoso.example"}}}
	m, err := New(cfg, reg, readyTable(t), newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	a := alert("1-a", "v1", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), wire.SeverityWarning, wire.AlertJobWarnings, "Sauvegarde terminée avec avertissements — poste-01"+strings.Repeat(" très long", 20))
	a.VaultName, a.Detail = "Zürich", "Fichiers ignorés : « C:\\Données\\verrouillé.pst »"
	if err := m.HandleAlert(testContext(t, 30*time.Second), body(t, a)); err != nil {
		t.Fatal(err)
	}
	msg := sink.Messages()[0]
	if want := "[Coffer] WARNING: " + a.Title + " (vault Zürich)"; msg.Subject != want {
		t.Errorf("subject %q\nwant    %q", msg.Subject, want)
	}
	for _, line := range strings.Split(string(msg.Raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d bytes breaks RFC 5322", len(line))
		}
	}
	if text := decodeBody(t, msg); !strings.Contains(text, a.Detail) {
		t.Errorf("body lacks %q:\n%s", a.Detail, text)
	}
}

func TestImplicitTLS(t *testing.T) {
	sink, cfg := tlsSink(t, smtpsink.Options{ImplicitTLS: true})
	reg := &vaults{to: map[string][]string{"v1": {"ops@contoso.example"}}}
	m, err := New(cfg, reg, readyTable(t), newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	a := alert("1-a", "v1", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), wire.SeverityCritical, wire.AlertCriticalOperation, "Security PIN used")
	if err := m.HandleAlert(testContext(t, 30*time.Second), body(t, a)); err != nil {
		t.Fatal(err)
	}
	if got := sink.Messages(); len(got) != 1 || !got[0].TLS || got[0].AuthUser != "mailer" {
		t.Fatalf("captured %+v, want one message over TLS from mailer", got)
	}
}

func TestSecurityIsNeverDowngraded(t *testing.T) {
	a := alert("1-a", "v1", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), wire.SeverityCritical, wire.AlertJobFailed, "Backup failed")
	reg := &vaults{to: map[string][]string{"v1": {"ops@contoso.example"}}}
	plain := startSink(t, smtpsink.Options{Username: "mailer", Password: "s3cret"})
	_, good := tlsSink(t, smtpsink.Options{})
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"STARTTLS required but not offered", Config{Host: plain.Host(), Port: port(t, plain), Username: "mailer", Password: "s3cret", From: "a@contoso.example"}, "STARTTLS"},
		{"untrusted certificate", func() Config { c := good; c.TLSConfig = nil; return c }(), "certificate"},
		{"wrong password", func() Config { c := good; c.Password = "guess"; return c }(), "check the SMTP username and password"},
		{"relay needs a login", func() Config { c := good; c.Username, c.Password = "", ""; return c }(), "MAIL FROM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.cfg, reg, readyTable(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = m.HandleAlert(testContext(t, 30*time.Second), body(t, a))
			if err == nil || errors.Is(err, ErrPoison) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want a retryable error about %q", err, tc.wantErr)
			}
		})
	}
	if n := len(plain.Messages()); n != 0 {
		t.Fatalf("%d messages went out in clear text", n)
	}

	// Clear text with a login is allowed to a relay on loopback only.
	m, err := New(Config{Host: plain.Host(), Port: port(t, plain), Security: SecurityNone, Username: "mailer", Password: "s3cret", From: "a@contoso.example"}, reg, readyTable(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.HandleAlert(testContext(t, 30*time.Second), body(t, a)); err != nil {
		t.Fatalf("loopback relay without TLS: %v", err)
	}
	if got := plain.Messages(); len(got) != 1 || got[0].AuthUser != "mailer" {
		t.Fatalf("captured %+v", got)
	}
}

func TestHandleAlertOutcomes(t *testing.T) {
	sink, cfg := tlsSink(t, smtpsink.Options{})
	valid := body(t, alert("1-a", "v1", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), wire.SeverityCritical, wire.AlertJobFailed, "Backup failed"))
	for _, tc := range []struct {
		name       string
		reg        *vaults
		body       []byte
		wantPoison bool
		wantErr    bool
		wantLookup bool
	}{
		{"not JSON", &vaults{}, []byte("{oops"), true, true, false},
		{"empty", &vaults{}, nil, true, true, false},
		{"unknown kind", &vaults{}, []byte(strings.Replace(string(valid), "job_failed", "disk_full", 1)), true, true, false},
		{"no recipients", &vaults{}, valid, false, false, true},
		{"only invalid recipients", &vaults{to: map[string][]string{"v1": {"not an address", "a@b\r\nBcc: x@y"}}}, valid, false, false, true},
		{"registry down", &vaults{err: errors.New("table storage unavailable")}, valid, false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(cfg, tc.reg, readyTable(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = m.HandleAlert(testContext(t, 30*time.Second), tc.body)
			if (err != nil) != tc.wantErr || errors.Is(err, ErrPoison) != tc.wantPoison {
				t.Fatalf("err = %v; want error %v, poison %v", err, tc.wantErr, tc.wantPoison)
			}
			if (tc.reg.lookups > 0) != tc.wantLookup {
				t.Fatalf("looked up recipients %d times", tc.reg.lookups)
			}
		})
	}
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("sent %d emails, want none", n)
	}
}

func TestSendErrorsAreReturnedForRetry(t *testing.T) {
	sink, cfg := tlsSink(t, smtpsink.Options{RejectFirst: 1})
	reg := &vaults{to: map[string][]string{"v1": {"ops@contoso.example"}}}
	m, err := New(cfg, reg, readyTable(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, alert("1-a", "v1", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), wire.SeverityCritical, wire.AlertJobFailed, "Backup failed"))
	ctx := testContext(t, 30*time.Second)
	if err := m.HandleAlert(ctx, b); err == nil || errors.Is(err, ErrPoison) || !strings.Contains(err.Error(), "451") {
		t.Fatalf("relay refusing: err = %v, want a retryable 451", err)
	}
	if err := m.HandleAlert(ctx, b); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	sink.Close()
	if err := m.HandleAlert(ctx, b); err == nil || errors.Is(err, ErrPoison) {
		t.Fatalf("relay down: err = %v, want a retryable error", err)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("sink holds %d messages, want 1", n)
	}
}

func countRows(t *testing.T, tbl *aztables.Client) map[string]int {
	t.Helper()
	out := map[string]int{}
	p := tbl.NewListEntitiesPager(&aztables.ListEntitiesOptions{Select: ptr("PartitionKey,RowKey")})
	for p.More() {
		page, err := p.NextPage(testContext(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range page.Entities {
			var e aztables.Entity
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			out[e.PartitionKey]++
		}
	}
	return out
}

func TestDigestCollectsThenSendsOneEmailPerVault(t *testing.T) {
	sink, cfg := tlsSink(t, smtpsink.Options{})
	tbl := digestTable(t)
	clk := newClock()
	reg := &vaults{
		to:     map[string][]string{"v1": {"ops@contoso.example"}, "v2": {"it@fabrikam.example"}, "v3": {"now@contoso.example"}},
		digest: map[string]bool{"v1": true, "v2": true},
	}
	m, err := New(cfg, reg, tbl, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, time.Minute)
	if err := m.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	first := alert("3-c", "v1", t0, wire.SeverityCritical, wire.AlertJobFailed, "Backup failed on branch-01")
	second := alert("2-b", "v1", t0.Add(10*time.Minute), wire.SeverityWarning, wire.AlertMissedBackup, "Missed backup on branch-02")
	third := alert("1-a", "v1", t0.Add(20*time.Minute), wire.SeverityCritical, wire.AlertCriticalOperation, "Security PIN used")
	other := alert("4-d", "v2", t0, wire.SeverityWarning, wire.AlertJobWarnings, "Completed with warnings")
	immediate := alert("5-e", "v3", t0, wire.SeverityCritical, wire.AlertJobFailed, "Backup failed on hq-01")
	// Out of order, and one redelivered: the digest still lists three.
	for _, a := range []wire.Alert{third, first, second, first, other, immediate} {
		if err := m.HandleAlert(ctx, body(t, a)); err != nil {
			t.Fatalf("HandleAlert(%s): %v", a.ID, err)
		}
	}
	if got := sink.Messages(); len(got) != 1 || !strings.Contains(got[0].Subject, "hq-01") {
		t.Fatalf("before the digest: %d emails, want only the per-alert one for v3", len(got))
	}
	if rows := countRows(t, tbl); rows["v1"] != 3 || rows["v2"] != 1 || rows["v3"] != 0 {
		t.Fatalf("digest rows %v, want v1:3 v2:1", rows)
	}

	clk.Advance(time.Hour)
	sent, err := m.SendDigests(ctx)
	if err != nil || sent != 2 {
		t.Fatalf("SendDigests = %d, %v; want 2", sent, err)
	}
	msgs := sink.Messages()[1:]
	if len(msgs) != 2 {
		t.Fatalf("%d digest emails, want 2", len(msgs))
	}
	d := msgs[0]
	if strings.Join(d.To, ",") != "ops@contoso.example" {
		t.Fatalf("first digest went to %v; vaults are sent in ID order", d.To)
	}
	if want := "[Coffer] Digest: 3 alerts (2 critical, 1 warning) in vault Contoso ROBO"; d.Subject != want {
		t.Errorf("subject %q, want %q", d.Subject, want)
	}
	if got := d.Header.Get("Date"); got != clk.Now().Format(time.RFC1123Z) {
		t.Errorf("Date = %q", got)
	}
	text := decodeBody(t, d)
	i1, i2, i3 := strings.Index(text, first.Title), strings.Index(text, second.Title), strings.Index(text, third.Title)
	if i1 < 0 || !(i1 < i2 && i2 < i3) || strings.Count(text, first.Title) != 1 {
		t.Errorf("digest must list each alert once, oldest first:\n%s", text)
	}
	if !strings.Contains(text, "2026-11-22T09:20:00Z") || !strings.Contains(text, "What to do") {
		t.Errorf("digest lacks times or advice:\n%s", text)
	}
	if want := "[Coffer] Digest: 1 alert (1 warning) in vault Contoso ROBO"; msgs[1].Subject != want {
		t.Errorf("second digest subject %q, want %q", msgs[1].Subject, want)
	}

	if rows := countRows(t, tbl); len(rows) != 0 {
		t.Fatalf("rows left after the digest: %v", rows)
	}
	if sent, err := m.SendDigests(ctx); sent != 0 || err != nil {
		t.Fatalf("second SendDigests = %d, %v; want nothing to send", sent, err)
	}
	if n := len(sink.Messages()); n != 3 {
		t.Fatalf("%d emails in all, want 3", n)
	}
}

func TestFailedDigestKeepsItsAlerts(t *testing.T) {
	sink, cfg := tlsSink(t, smtpsink.Options{RejectFirst: 1})
	tbl := digestTable(t)
	reg := &vaults{to: map[string][]string{"v1": {"ops@contoso.example"}}, digest: map[string]bool{"v1": true}}
	m, err := New(cfg, reg, tbl, newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, time.Minute)
	if err := m.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	for _, a := range []wire.Alert{
		alert("1-a", "v1", t0, wire.SeverityCritical, wire.AlertJobFailed, "Backup failed"),
		alert("2-b", "v1", t0.Add(time.Minute), wire.SeverityWarning, wire.AlertMissedBackup, "Missed backup"),
	} {
		if err := m.HandleAlert(ctx, body(t, a)); err != nil {
			t.Fatal(err)
		}
	}

	// The relay refuses: nothing sent, nothing deleted.
	if sent, err := m.SendDigests(ctx); sent != 0 || err == nil || !strings.Contains(err.Error(), "kept for the next run") {
		t.Fatalf("SendDigests with the relay refusing = %d, %v", sent, err)
	}
	if rows := countRows(t, tbl); rows["v1"] != 2 {
		t.Fatalf("rows after a refused digest: %v, want both kept", rows)
	}

	// The relay is down: the same.
	sink.Close()
	if sent, err := m.SendDigests(ctx); sent != 0 || err == nil {
		t.Fatalf("SendDigests with the relay down = %d, %v", sent, err)
	}
	if rows := countRows(t, tbl); rows["v1"] != 2 {
		t.Fatalf("rows after a failed digest: %v, want both kept", rows)
	}

	// Back up (on a new port): both alerts go out in one email.
	sink2, cfg2 := tlsSink(t, smtpsink.Options{})
	m2, err := New(cfg2, reg, tbl, newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	if sent, err := m2.SendDigests(ctx); sent != 1 || err != nil {
		t.Fatalf("SendDigests = %d, %v; want 1", sent, err)
	}
	if got := sink2.Messages(); len(got) != 1 || !strings.Contains(got[0].Subject, "2 alerts (1 critical, 1 warning)") {
		t.Fatalf("captured %+v", got)
	}
	if rows := countRows(t, tbl); len(rows) != 0 {
		t.Fatalf("rows left: %v", rows)
	}
}

func TestHeaderValuesCannotAddHeaders(t *testing.T) {
	m, err := New(Config{Host: "127.0.0.1", Security: SecurityNone, From: "Coffer <alerts@contoso.example>"}, &vaults{}, offlineTable(t), newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	raw := m.compose([]string{"ops@contoso.example\r\nBcc: thief@evil.example"}, "Backup failed\r\nBcc: thief@evil.example\nX-Evil: 1",
		"<id\r\nX-Evil: 2@x>", map[string]string{"X-Coffer-Vault": "v1\rX-Evil: 3"}, "body\r\n.\r\nstill body")
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for k := range msg.Header {
		if k == "Bcc" || k == "X-Evil" {
			t.Fatalf("header %s was injected:\n%s", k, raw)
		}
	}
	if s := msg.Header.Get("Subject"); s != "Backup failed Bcc: thief@evil.example X-Evil: 1" {
		t.Errorf("Subject = %q", s)
	}
}

func ptr[T any](v T) *T { return &v }
