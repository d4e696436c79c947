package mailer

import (
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/shared/wire"
)

func TestDefangBreaksLinks(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"see https://contoso-backup.example/login now", "see hxxps[:]//contoso-backup[.]example/login now"},
		{"HTTP://EVIL.EXAMPLE", "HxxP[:]//EVIL[.]EXAMPLE"},
		{"ftp://files.example/x", "fxx[:]//files[.]example/x"},
		{"hxxp : // spaced.example", "hxxp[:]// spaced[.]example"},
		{"custom+app://open", "custom+app[:]//open"},
		{"://bare", "[:]//bare"},
		{"mailto:help@desk.example", "mailto[:]help@desk[.]example"},
		{"javascript:alert(1)", "javascript[:]alert(1)"},
		{"www.contoso.example", "www[.]contoso[.]example"},
		{"call 10.0.0.1 or 192.168.1.254:8080", "call 10[.]0[.]0[.]1 or 192[.]168[.]1[.]254:8080"},
		{"bücher.example and 例え。テスト", "bücher[.]example and 例え[.]テスト"},
		{`\\nas01\backup\share`, `[\\]nas01\backup\share`},
		{"C:\\Data\\report.docx: in use", "C:\\Data\\report[.]docx: in use"},
		{"data: read error, version 1.2.3", "data: read error, version 1.2.3"},
		{"end of sentence. Next one", "end of sentence. Next one"},
		{"bidi \u202egnp.exe\u202c and zero\u200bwidth", "bidi gnp[.]exe and zerowidth"},
		{"tab\tline\r\nnext\x1b[31m", "tab\tline\n\nnext[31m"},
	} {
		if got := defang(tc.in); got != tc.want {
			t.Errorf("defang(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// A machine registered under a host-like name does not become a link in
// the subject, the title or the facts.
func TestMachineNamesAreDefanged(t *testing.T) {
	m, err := New(Config{Host: "127.0.0.1", Security: SecurityNone, From: "Coffer <alerts@contoso.example>"}, &vaults{}, offlineTable(t), newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	a := alert("1-a", "v1", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), wire.SeverityCritical, wire.AlertJobFailed, "Backup failed on login.billing.example")
	a.MachineName = "login.billing.example"
	raw := m.alertEmail(a, []string{"ops@contoso.example"})
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	body := decodeBody(t, smtpsink.Message{Header: msg.Header, Body: readAll(t, msg)})
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if strings.Contains(body, "login.billing.example") || strings.Contains(subject, "login.billing.example") ||
		!strings.Contains(subject, "login[.]billing[.]example") {
		t.Fatalf("the machine's name is linkable:\n%s\n%s", subject, body)
	}
}

// linkable finds what a mail client could still turn into a link, or
// what does not belong in an email's text.
var linkable = []*regexp.Regexp{
	regexp.MustCompile(`://`),
	regexp.MustCompile(`(?i)\b(https?|ftps?|file|mailto|javascript|vbscript|tel|sms):\S`),
	regexp.MustCompile(`[\p{L}\p{N}\-]\.\p{L}`),
	regexp.MustCompile(`\d\.\d{1,3}\.\d{1,3}\.\d`),
	regexp.MustCompile(`[\x00-\x08\x0b-\x1f\x7f\x{202a}-\x{202e}\x{2066}-\x{2069}\x{200b}-\x{200f}\x{feff}]`),
}

func checkReported(t *testing.T, text string) {
	t.Helper()
	for _, re := range linkable {
		if loc := re.FindStringIndex(strings.ReplaceAll(text, `[\\]`, "")); loc != nil {
			t.Fatalf("reported block still has %q (%s):\n%s", text[loc[0]:loc[1]], re, text)
		}
	}
	if strings.Contains(strings.ReplaceAll(text, `[\\]`, ""), `\\`) {
		t.Fatalf("a UNC path survived:\n%s", text)
	}
}

// reportedLines is the reported block of an email body: the lines behind
// "| " after the heading.
func reportedLines(body string) (heading bool, lines []string) {
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimLeft(l, " ")
		switch {
		case strings.HasPrefix(l, "Reported by the machine"):
			heading = true
		case heading && strings.HasPrefix(l, "| "):
			lines = append(lines, strings.TrimPrefix(l, "| "))
		}
	}
	return heading, lines
}

// The phishing story: a machine reports a failed job whose message tells
// the reader to log in somewhere. The email shows it as the machine's
// words, quoted, with the link broken.
func TestReportedTextIsMarkedQuotedAndDefanged(t *testing.T) {
	m, err := New(Config{Host: "127.0.0.1", Security: SecurityNone, From: "Coffer <alerts@contoso.example>"}, &vaults{}, offlineTable(t), newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	a := alert("1-a", "v1", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), wire.SeverityCritical, wire.AlertJobFailed, "Backup failed on branch-01")
	a.Reported = "error code: auth\nYour backups are corrupt.\nWhat to do\n----------\nLog in at https://coffer-support.example/restore within 24 hours.\n" +
		strings.Repeat("padding line\n", 100)
	raw := m.alertEmail(a, []string{"ops@contoso.example"})
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	body := decodeBody(t, smtpsink.Message{Header: msg.Header, Body: readAll(t, msg)})
	heading, lines := reportedLines(body)
	if !heading || len(lines) == 0 {
		t.Fatalf("no marked reported block:\n%s", body)
	}
	if !strings.Contains(body, "Coffer did not write or check this text") {
		t.Errorf("the block does not say Coffer did not check it:\n%s", body)
	}
	joined := strings.Join(lines, "\n")
	checkReported(t, joined)
	for _, want := range []string{"hxxps[:]//coffer-support[.]example/restore", "Your backups are corrupt.", "shortened"} {
		if !strings.Contains(joined, want) {
			t.Errorf("reported block lacks %q:\n%s", want, joined)
		}
	}
	if len(lines) > maxReportedLines+1 {
		t.Errorf("%d reported lines shown, want at most %d", len(lines), maxReportedLines+1)
	}
	// The fake "What to do" heading stays inside the quote: the real one
	// comes once, unquoted.
	if strings.Count(body, "\nWhat to do\n") != 1 {
		t.Errorf("the machine's text forged a section:\n%s", body)
	}
}

func readAll(t *testing.T, msg *mail.Message) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := b.ReadFrom(msg.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Thirty failed jobs from one machine: three emails at once, then one
// digest that summarises the rest; critical operations on the machine are
// never held back, and the next hour it may email again.
func TestABurstFromOneMachineBecomesOneEmail(t *testing.T) {
	sink, cfg := tlsSink(t, smtpsink.Options{})
	clk := newClock()
	reg := &vaults{to: map[string][]string{"v1": {"ops@contoso.example"}}}
	m, err := New(cfg, reg, readyTable(t), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, time.Minute)
	send := func(id, kind, title string) {
		t.Helper()
		a := alert(id, "v1", clk.Now(), wire.SeverityCritical, kind, title)
		a.Reported = "Visit https://phish.example/" + id
		if err := m.HandleAlert(ctx, body(t, a)); err != nil {
			t.Fatalf("HandleAlert %s: %v", id, err)
		}
		clk.Advance(time.Second)
	}
	for i := range 30 {
		send(fmt.Sprintf("%d-f", 100+i), wire.AlertJobFailed, "Backup failed on branch-01")
	}
	if n := len(sink.Messages()); n != BurstLimit {
		t.Fatalf("%d emails for 30 failures, want %d", n, BurstLimit)
	}
	send("200-c", wire.AlertCriticalOperation, "Passphrase of branch-01 changed")
	if n := len(sink.Messages()); n != BurstLimit+1 {
		t.Fatalf("a critical operation was held back: %d emails", n)
	}
	// Another kind has its own budget: failures do not delay it.
	send("201-w", wire.AlertJobWarnings, "Backup on branch-01 completed with warnings")
	if n := len(sink.Messages()); n != BurstLimit+2 {
		t.Fatalf("an alert of another kind was held back by the failures: %d emails", n)
	}
	sent, err := m.SendDigests(ctx)
	if err != nil || sent != 1 {
		t.Fatalf("SendDigests: %d, %v", sent, err)
	}
	msgs := sink.Messages()
	digest := msgs[len(msgs)-1]
	text := decodeBody(t, digest)
	if !strings.Contains(digest.Subject, "27 alerts") {
		t.Errorf("digest subject %q, want the 27 held alerts counted", digest.Subject)
	}
	if !strings.Contains(text, fmt.Sprintf("%d more alerts from machine branch-01 (m-01)", 27-DigestPerMachine)) {
		t.Errorf("digest does not summarise the burst:\n%s", text)
	}
	if n := strings.Count(text, "Reported by the machine"); n != DigestPerMachine {
		t.Errorf("digest shows the machine's text %d times, want %d", n, DigestPerMachine)
	}
	_, lines := reportedLines(text)
	checkReported(t, strings.Join(lines, "\n"))

	clk.Advance(BurstWindow)
	send("300-f", wire.AlertJobFailed, "Backup failed on branch-01")
	if n := len(sink.Messages()); n != BurstLimit+4 {
		t.Fatalf("after the window: %d emails, want the new alert emailed at once", n)
	}
	// The ended count is swept by the digest run.
	if _, err := m.SendDigests(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(BurstWindow)
	if _, err := m.SendDigests(ctx); err != nil {
		t.Fatal(err)
	}
	if rows := countRows(t, m.digests); rows[ratePartition] != 0 {
		t.Fatalf("rate rows left: %v", rows)
	}
}

// Concurrent deliveries for one machine never send more than BurstLimit
// emails between them.
func TestBurstLimitHoldsUnderConcurrency(t *testing.T) {
	clk := newClock()
	m, err := New(Config{Host: "127.0.0.1", Security: SecurityNone, From: "a@contoso.example"}, &vaults{}, readyTable(t), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, time.Minute)
	a := alert("1-a", "v1", clk.Now(), wire.SeverityCritical, wire.AlertJobFailed, "Backup failed")
	results := make(chan bool, 20)
	for range 20 {
		go func() {
			ok, err := m.takeEmail(ctx, a)
			if err != nil {
				t.Error(err)
			}
			results <- ok
		}()
	}
	n := 0
	for range 20 {
		if <-results {
			n++
		}
	}
	if n != BurstLimit {
		t.Fatalf("%d of 20 concurrent alerts allowed an email, want %d", n, BurstLimit)
	}
}

// FuzzReportedText: whatever a machine reports, the alert email parses,
// carries its text only inside the marked block, and nothing in that
// block can become a link or hide characters.
func FuzzReportedText(f *testing.F) {
	for _, s := range []string{
		"Log in at https://evil.example/x", "\\\\nas\\share", "a\u202eb", "x:/" + "/y", "www.example.com",
		"mailto:a@b.example", "1.2.3.4", "例え。テスト", "line\r\nline", strings.Repeat("é", 3000), "\\\\\\",
	} {
		f.Add(s)
	}
	m, err := New(Config{Host: "127.0.0.1", Security: SecurityNone, From: "Coffer <alerts@contoso.example>"}, &vaults{}, offlineTable(f), newClock().Now)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, reported string) {
		a := alert("1-a", "v1", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), wire.SeverityCritical, wire.AlertJobFailed, "Backup failed")
		a.Reported = reported
		// Through the queue's rules, as the mailer gets it.
		raised, err := alerts.DecodeMessage(body(t, tidyReported(a)))
		if err != nil {
			t.Fatalf("a tidied alert does not decode: %v", err)
		}
		raw := m.alertEmail(raised, []string{"ops@contoso.example"})
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("email does not parse: %v", err)
		}
		text := decodeBody(t, smtpsink.Message{Header: msg.Header, Body: readAll(t, msg)})
		_, lines := reportedLines(text)
		joined := strings.Join(lines, "\n")
		checkReported(t, joined)
		for _, l := range lines {
			if len(l) > maxReportedLine+len("…") {
				t.Fatalf("reported line of %d bytes", len(l))
			}
		}
		if len(lines) > maxReportedLines+1 {
			t.Fatalf("%d reported lines", len(lines))
		}
	})
}

// tidyReported applies what alerts.Raise does to reported text: control
// characters out, length bounded.
func tidyReported(a wire.Alert) wire.Alert {
	s := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(a.Reported, "\uFFFD"))
	a.Reported = cut(s, alerts.MaxReportedLen-len("…"))
	return a
}
