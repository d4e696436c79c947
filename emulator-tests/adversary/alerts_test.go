package adversary

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/shared/wire"
)

// phishing is what a compromised machine puts in its failed jobs' messages.
const phishing = `URGENT: your Microsoft 365 password has expired. <a href="http://evil.example/login">Sign in here</a> within 24 hours or your backups will be deleted.`

var evilLink = regexp.MustCompile(`(?i)href\s*=\s*["']?https?://evil\.example`)

// Attack 6: a machine reports 30 failed jobs whose message is a phishing
// text. On the old code the vault's recipients got 30 critical emails
// carrying the text verbatim, from Coffer's own address. A machine's text
// is data: escaped, marked as the machine's, never a link; and one machine
// gets a few emails, the rest aggregated into a digest.
func TestPhishingInJobMessagesIsEscapedAndAggregated(t *testing.T) {
	ctx := t.Context()
	v := fx.vault
	phisher, err := fx.register(ctx, v, "phisher")
	if err != nil {
		t.Fatal(err)
	}
	sentinel, err := fx.register(ctx, v, "sentinel")
	if err != nil {
		t.Fatal(err)
	}
	fail := func(m *machine, message string) {
		t.Helper()
		agent := m.agent(fx.cp)
		var j wire.Job
		if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j); err != nil {
			t.Fatalf("%s creates a job: %v", m.name, err)
		}
		if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/jobs/"+j.ID, wire.JobReport{Status: wire.StatusFailed,
			ErrorCode: "auth_expired", Message: message}, nil); err != nil {
			t.Fatalf("%s reports a failure: %v", m.name, err)
		}
	}
	// Both machines need a policy to back up.
	phisher.src, sentinel.src = fx.victim.src, fx.victim.src
	for _, m := range []*machine{phisher, sentinel} {
		if err := fx.assignLongPolicy(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for range 30 {
		fail(phisher, phishing)
	}
	waitFor(t, "the 30 failures to be recorded as alerts", time.Minute, func() bool {
		n := 0
		for _, a := range alerts(t, fx.reader, v.ID) {
			if a.MachineID == phisher.id && a.Kind == wire.AlertJobFailed {
				n++
			}
		}
		return n >= 30
	})
	// A failure of another machine, queued after the 30: once its email is
	// out, the 30 have been handled.
	fail(sentinel, "disk not mounted")
	waitFor(t, "the email about the sentinel machine's failure", 2*time.Minute, func() bool {
		return len(mailsAbout(fx.st.SMTP, sentinel.name)) > 0
	})
	immediate := len(mailsAbout(fx.st.SMTP, phisher.name))
	if immediate == 0 || immediate >= 30 {
		t.Errorf("%d emails about %s's 30 failures were sent at once; want a few, the rest aggregated", immediate, phisher.name)
	}
	// An hour later the digest summarises the rest in one email.
	tm := timeMachine(t)
	tm.advance(t, time.Hour+time.Minute)
	if code, logs := tm.invoke(t, "SendAlertDigest"); code != http.StatusOK {
		t.Errorf("SendAlertDigest answered %d: %s", code, logs)
	}
	waitFor(t, "the digest email about "+phisher.name, time.Minute, func() bool {
		return len(mailsAbout(fx.st.SMTP, phisher.name)) > immediate
	})
	mails := mailsAbout(fx.st.SMTP, phisher.name)
	if len(mails) > immediate+2 {
		t.Errorf("%s's 30 failures made %d emails; want a few and one digest", phisher.name, len(mails))
	}
	for _, m := range mails {
		for _, p := range mailParts(t, m) {
			if evilLink.MatchString(p.text) || strings.Contains(p.text, "://evil.example") {
				t.Errorf("email %q carries the machine's link live, which mail clients make clickable (%s part):\n%s", m.Subject, p.kind, p.text)
			}
			if strings.Contains(p.kind, "html") && strings.Contains(p.text, `<a href="http://evil.example`) {
				t.Errorf("email %q carries the machine's HTML unescaped", m.Subject)
			}
		}
	}
}

// mailsAbout is the captured mail that names a machine.
func mailsAbout(sink *smtpsink.Sink, name string) []smtpsink.Message {
	var out []smtpsink.Message
	for _, m := range sink.Messages() {
		if strings.Contains(m.Subject, name) || strings.Contains(m.Body, name) {
			out = append(out, m)
		}
	}
	return out
}

// part is one decoded text part of an email.
type part struct{ kind, text string }

// mailParts decodes every text part of a message (multipart, quoted-
// printable, base64), so checks see what a mail client shows.
func mailParts(t *testing.T, m smtpsink.Message) []part {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		t.Fatalf("email %q does not parse: %v", m.Subject, err)
	}
	var out []part
	var walk func(h map[string][]string, body io.Reader)
	walk = func(h map[string][]string, body io.Reader) {
		get := func(k string) string {
			if vs := h[k]; len(vs) > 0 {
				return vs[0]
			}
			return ""
		}
		ct, params, err := mime.ParseMediaType(get("Content-Type"))
		if err != nil {
			ct = "text/plain"
		}
		if strings.HasPrefix(ct, "multipart/") {
			r := multipart.NewReader(body, params["boundary"])
			for {
				p, err := r.NextRawPart()
				if err != nil {
					return
				}
				walk(p.Header, p)
			}
		}
		switch strings.ToLower(get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, _ := io.ReadAll(body)
		out = append(out, part{kind: ct, text: string(b)})
	}
	walk(msg.Header, msg.Body)
	return out
}
