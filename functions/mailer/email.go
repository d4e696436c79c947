package mailer

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/coffer-backup/coffer/shared/wire"
)

// alertEmail is the email for one alert.
func (m *Mailer) alertEmail(a wire.Alert, to []string) []byte {
	subject := fmt.Sprintf("[Coffer] %s: %s (vault %s)", strings.ToUpper(a.Severity), title(a), vaultLabel(a))
	var b strings.Builder
	fmt.Fprintf(&b, "%s alert in vault %s\n\n%s\n\n", strings.ToUpper(a.Severity), vaultLabel(a), title(a))
	switch {
	case a.Reported != "":
		// Detail repeats the machine's words for API readers; email shows
		// them only once, quoted and defanged.
		b.WriteString("What happened\n-------------\nThe machine's own report of what happened follows, quoted as data.\n\n")
	case a.Detail != "":
		fmt.Fprintf(&b, "What happened\n-------------\n%s\n\n", strings.TrimRight(a.Detail, "\n"))
	}
	reported(&b, a, "")
	facts(&b, a, "")
	fmt.Fprintf(&b, "\nWhat to do\n----------\n%s\n", m.advice(a.Kind))
	b.WriteString("Once it is dealt with, acknowledge the alert in Coffer so it no longer shows as open.\n")
	if link := m.portalLink(a); link != "" {
		fmt.Fprintf(&b, "\nOpen it in the Coffer portal:\n%s\n", link)
	}
	footer(&b, a)
	return m.compose(to, subject, "<alert."+a.ID+"@"+m.domain+">", map[string]string{
		"X-Coffer-Vault": a.VaultID, "X-Coffer-Alert": a.ID,
	}, b.String())
}

// digestEmail lists a vault's pending alerts, oldest first.
func (m *Mailer) digestEmail(as []wire.Alert, to []string, more int) []byte {
	first := as[0]
	counts := map[string]int{}
	for _, a := range as {
		counts[a.Severity]++
	}
	var parts []string
	for _, sev := range []string{wire.SeverityCritical, wire.SeverityWarning} {
		if counts[sev] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[sev], sev))
		}
	}
	noun := "alerts"
	if len(as) == 1 {
		noun = "alert"
	}
	subject := fmt.Sprintf("[Coffer] Digest: %d %s (%s) in vault %s", len(as), noun, strings.Join(parts, ", "), vaultLabel(first))

	var b strings.Builder
	fmt.Fprintf(&b, "%d %s in vault %s since the last digest, oldest first.\n", len(as), noun, vaultLabel(first))
	if more > 0 {
		fmt.Fprintf(&b, "%d more will follow in the next digest.\n", more)
	}
	kinds := []string{}
	perMachine := map[string]int{}
	n := 0
	for i, a := range as {
		if !slices.Contains(kinds, a.Kind) {
			kinds = append(kinds, a.Kind)
		}
		// A burst from one machine is summarised, not listed: its first
		// alerts in full, then one line for the rest.
		if limited(a) {
			perMachine[a.MachineID]++
			if k := perMachine[a.MachineID]; k > DigestPerMachine {
				if k == DigestPerMachine+1 {
					burstSummary(&b, a, as[i:])
				}
				continue
			}
		}
		n++
		fmt.Fprintf(&b, "\n%d. %s: %s\n\n", n, strings.ToUpper(a.Severity), title(a))
		if a.Detail != "" && a.Reported == "" {
			b.WriteString(indent(strings.TrimRight(a.Detail, "\n"), "   "))
			b.WriteString("\n\n")
		}
		reported(&b, a, "   ")
		facts(&b, a, "   ")
	}
	b.WriteString("\nWhat to do\n----------\n")
	for _, k := range kinds {
		fmt.Fprintf(&b, "%s: %s\n\n", kindName(k), m.advice(k))
	}
	b.WriteString("Once they are dealt with, acknowledge the alerts in Coffer so they no longer show as open.\n")
	if m.cfg.PortalURL != "" {
		fmt.Fprintf(&b, "\nOpen the vault's alerts in the Coffer portal:\n%s\n", m.portalBase(first.VaultID)+"/alerts")
	}
	footer(&b, first)
	return m.compose(to, subject, "<digest."+first.VaultID+"."+randomHex()+"@"+m.domain+">", map[string]string{
		"X-Coffer-Vault": first.VaultID,
	}, b.String())
}

// DigestPerMachine is how many alerts of one machine a digest shows in
// full; the rest of that machine's alerts are summarised in one line.
const DigestPerMachine = 3

// burstSummary writes the line that stands for first and the later alerts
// of its machine in rest.
func burstSummary(b *strings.Builder, first wire.Alert, rest []wire.Alert) {
	count := 0
	kinds := map[string]int{}
	var order []string
	last := first.RaisedAt
	for _, a := range rest {
		if a.MachineID != first.MachineID || !limited(a) {
			continue
		}
		count++
		if kinds[a.Kind] == 0 {
			order = append(order, a.Kind)
		}
		kinds[a.Kind]++
		last = a.RaisedAt
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d %s", kinds[k], kindName(k))
	}
	name := first.MachineID
	if first.MachineName != "" {
		name = defang(first.MachineName) + " (" + first.MachineID + ")"
	}
	fmt.Fprintf(b, "\n+  %d more alerts from machine %s, %s to %s: %s.\n", count, name,
		first.RaisedAt.UTC().Format("2 Jan 15:04"), last.UTC().Format("2 Jan 15:04 UTC"), strings.Join(parts, ", "))
	fmt.Fprintf(b, "   A burst from one machine is summarised here, without its reported text;\n   list them with coffer admin alerts %s, or GET %s/vaults/%s/alerts?machine=%s\n", first.VaultID, wire.Version, first.VaultID, first.MachineID)
}

func facts(b *strings.Builder, a wire.Alert, pad string) {
	row := func(k, v string) { fmt.Fprintf(b, "%s%-9s %s\n", pad, k+":", v) }
	t := a.RaisedAt.UTC()
	row("When", t.Format("Monday 2 January 2006, 15:04:05 UTC")+" ("+t.Format(time.RFC3339)+")")
	if a.MachineName != "" || a.MachineID != "" {
		switch {
		case a.MachineName == "":
			row("Machine", a.MachineID)
		case a.MachineID == "":
			row("Machine", defang(a.MachineName))
		default:
			row("Machine", defang(a.MachineName)+" ("+a.MachineID+")")
		}
	}
	if a.JobID != "" {
		row("Job ID", a.JobID)
	}
	row("Kind", kindName(a.Kind)+" ("+a.Kind+")")
	row("Alert ID", a.ID)
}

// portalBase is the portal's address of a vault's pages.
func (m *Mailer) portalBase(vaultID string) string {
	return strings.TrimRight(m.cfg.PortalURL, "/") + "/#/v/" + url.PathEscape(vaultID)
}

// portalLink is the portal page of an alert: its job among the machine's
// jobs, else its machine, else the vault's alerts. The IDs are the control
// plane's own, never text a machine chose.
func (m *Mailer) portalLink(a wire.Alert) string {
	if m.cfg.PortalURL == "" || a.VaultID == "" {
		return ""
	}
	base := m.portalBase(a.VaultID)
	switch {
	case a.JobID != "" && a.MachineID != "":
		return base + "/jobs?" + url.Values{"machine": {a.MachineID}, "job": {a.JobID}}.Encode()
	case a.MachineID != "":
		return base + "/machines/" + url.PathEscape(a.MachineID)
	}
	return base + "/alerts"
}

func footer(b *strings.Builder, a wire.Alert) {
	fmt.Fprintf(b, "\n-- \nSent by Coffer to the alert recipients of vault %s (%s).\nChange the recipients, or switch to an hourly digest, in the vault's settings.\n", vaultLabel(a), a.VaultID)
}

func kindName(kind string) string {
	switch kind {
	case wire.AlertJobFailed:
		return "Backup failed"
	case wire.AlertJobWarnings:
		return "Completed with warnings"
	case wire.AlertCriticalOperation:
		return "Critical operation"
	case wire.AlertMissedBackup:
		return "Missed backup"
	case wire.AlertProtectionStopped:
		return "Protection stopped"
	case wire.AlertRansomware:
		return "Possible ransomware"
	}
	return kind
}

func (m *Mailer) advice(kind string) string {
	switch kind {
	case wire.AlertJobFailed:
		return "Open the job in Coffer to see its errors, fix the cause on the machine, then run the backup again or let the next scheduled one run. Until a backup succeeds, recent changes on this machine are not protected."
	case wire.AlertJobWarnings:
		return "The backup finished but skipped some items. Review the job's list of skipped files; if they matter, fix access to them and run the backup again."
	case wire.AlertCriticalOperation:
		return "A security-sensitive operation was performed on the vault. If nobody on your team expected it, review who has access to the vault, change the security PIN, and check recovery points and soft-deleted items (kept for " + fmt.Sprint(m.softDeleteDays()) + " days)."
	case wire.AlertProtectionStopped:
		return "No backup runs on a machine whose protection is stopped, and none is alerted as missed. If that was not intended, resume protection in Coffer; if the machine is retired, a Backup Contributor can delete its data with a security PIN."
	case wire.AlertRansomware:
		return "Check the machine now: disconnect it from the network if its files are being encrypted. Do not restore the flagged point; the points before it are kept for at least 30 days. If the change was expected, a Backup Contributor acknowledges the alert as a false positive, and the alarm learns this machine's pattern."
	case wire.AlertMissedBackup:
		return "No backup ran when it was scheduled. Check that the machine is on and online, that the Coffer agent service is running, and that it can reach Azure."
	}
	return "Open the alert in Coffer for details."
}

func vaultLabel(a wire.Alert) string {
	if a.VaultName != "" {
		return a.VaultName
	}
	return a.VaultID
}

// compose writes an RFC 5322 message: UTF-8 text, quoted-printable, with
// every header value cleaned of line breaks so no value can add a header.
func (m *Mailer) compose(to []string, subject, messageID string, extra map[string]string, body string) []byte {
	var h bytes.Buffer
	header := func(k, v string) {
		h.WriteString(k)
		h.WriteString(": ")
		h.WriteString(fold(len(k)+2, v))
		h.WriteString("\r\n")
	}
	header("Date", m.now().Format(time.RFC1123Z))
	header("From", clean(m.from.String()))
	header("To", strings.Join(cleanAll(to), ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", clean(subject)))
	header("Message-ID", clean(messageID))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834: mail robots and vacation responders must not answer.
	header("Auto-Submitted", "auto-generated")
	for _, k := range []string{"X-Coffer-Vault", "X-Coffer-Alert"} {
		if v, ok := extra[k]; ok {
			header(k, clean(v))
		}
	}
	h.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&h)
	qp.Write([]byte(body))
	qp.Close()
	return h.Bytes()
}

// clean makes s safe as a header value: control characters, CR and LF above
// all, become spaces.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return strings.Join(strings.Fields(s), " ")
}

func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}

// fold breaks a header value at spaces so lines stay near 78 characters;
// start is how much of the first line the name already takes.
func fold(start int, v string) string {
	words := strings.Split(v, " ")
	var b strings.Builder
	n := start
	for i, w := range words {
		if i > 0 {
			if n+1+len(w) > 78 {
				b.WriteString("\r\n ")
				n = 1
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

func indent(s, pad string) string {
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

func randomHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
