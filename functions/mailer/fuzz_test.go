package mailer

import (
	"bytes"
	"net/mail"
	"testing"

	"github.com/coffer-backup/coffer/functions/alerts"
)

// FuzzAlertEmail: whatever alert a queue message decodes to, the email built
// from it parses and carries only the headers the mailer writes.
func FuzzAlertEmail(f *testing.F) {
	f.Add([]byte(`{"id":"1-a","vaultId":"v1","vaultName":"Zürich","machineId":"m-01","machineName":"b\u00e9","severity":"critical","kind":"job_failed","title":"Backup failed","detail":"x\ny","raisedAt":"2026-11-22T09:00:00Z"}`))
	f.Add([]byte(`{"id":"1-a","vaultId":"v1","severity":"warning","kind":"missed_backup","title":"=?utf-8?q?a?= Bcc: x@y","raisedAt":"2026-11-22T09:00:00Z"}`))
	allowed := map[string]bool{"Date": true, "From": true, "To": true, "Subject": true, "Message-Id": true, "Mime-Version": true,
		"Content-Type": true, "Content-Transfer-Encoding": true, "Auto-Submitted": true, "X-Coffer-Vault": true, "X-Coffer-Alert": true}
	m, err := New(Config{Host: "127.0.0.1", Security: SecurityNone, From: "Coffer <alerts@contoso.example>"}, &vaults{}, offlineTable(f), newClock().Now)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := alerts.DecodeMessage(body)
		if err != nil {
			return
		}
		raw := m.alertEmail(a, []string{"ops@contoso.example"})
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("email does not parse: %v\n%s", err, raw)
		}
		for k, v := range msg.Header {
			if !allowed[k] || len(v) != 1 {
				t.Fatalf("unexpected header %s: %q\n%s", k, v, raw)
			}
		}
		for _, line := range bytes.Split(raw, []byte("\r\n")) {
			if len(line) > 998 {
				t.Fatalf("line of %d bytes", len(line))
			}
		}
	})
}
