package mailer

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Emails link to the alert's page in the portal when its address is set:
// a job among its machine's jobs, a machine, or the vault's alerts; the
// digest to the vault's alerts. Without the address there is no link.
func TestEmailsLinkToThePortal(t *testing.T) {
	text := func(raw []byte) string {
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		return decodeBody(t, smtpsink.Message{Header: msg.Header, Body: readAll(t, msg)})
	}
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	job := alert("1-a", "v1", at, wire.SeverityCritical, wire.AlertJobFailed, "Backup failed on branch-01")
	machine := job
	machine.JobID, machine.Kind = "", wire.AlertMissedBackup
	vault := machine
	vault.MachineID, vault.MachineName, vault.Kind = "", "", wire.AlertCriticalOperation

	m, err := New(Config{Host: "127.0.0.1", Security: SecurityNone, From: "Coffer <alerts@contoso.example>", PortalURL: "https://coffer.contoso.example/portal/"}, &vaults{}, offlineTable(t), newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a    wire.Alert
		want string
	}{
		{job, "https://coffer.contoso.example/portal/#/v/v1/jobs?job=job-42&machine=m-01"},
		{machine, "https://coffer.contoso.example/portal/#/v/v1/machines/m-01"},
		{vault, "https://coffer.contoso.example/portal/#/v/v1/alerts"},
	} {
		if body := text(m.alertEmail(tc.a, []string{"ops@contoso.example"})); !strings.Contains(body, "Open it in the Coffer portal:\n"+tc.want+"\n") {
			t.Errorf("%s alert: no link to %s in\n%s", tc.a.Kind, tc.want, body)
		}
	}
	if body := text(m.digestEmail([]wire.Alert{job, machine}, []string{"ops@contoso.example"}, 0)); !strings.Contains(body, "https://coffer.contoso.example/portal/#/v/v1/alerts\n") {
		t.Errorf("digest: no link to the vault's alerts in\n%s", body)
	}

	m, err = New(Config{Host: "127.0.0.1", Security: SecurityNone, From: "Coffer <alerts@contoso.example>"}, &vaults{}, offlineTable(t), newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	if body := text(m.alertEmail(job, []string{"ops@contoso.example"})); strings.Contains(body, "portal") {
		t.Errorf("a link without a portal address:\n%s", body)
	}
}
