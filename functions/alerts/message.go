package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Limits on an alert. They keep a message well under MaxMessageBytes even
// when JSON escapes every character twice, and a stored row well under Table
// storage's 64 KiB per string property.
const (
	MaxMessageBytes = 64 << 10 // a Service Bus alert body
	MaxIDLen        = 128      // vault, machine, job and alert IDs
	MaxNameLen      = 256      // vault and machine display names, acknowledged-by
	MaxTitleLen     = 512      // one line, for an email subject
	MaxDetailLen    = 8 << 10  // what happened and what to do
	MaxReportedLen  = 4 << 10  // text the machine reported
)

// ErrInvalid marks an alert, filter or ID that breaks the rules above. IDs
// end up in OData filters, so anything but [a-z0-9-] is refused outright.
var ErrInvalid = errors.New("invalid alert")

var idPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// ValidID reports whether id may be used as a vault, machine or alert ID.
func ValidID(id string) bool {
	return len(id) > 0 && len(id) <= MaxIDLen && idPattern.MatchString(id)
}

func checkID(what, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %s %q must be 1-%d characters of a-z, 0-9 and '-'", ErrInvalid, what, clip(id), MaxIDLen)
	}
	return nil
}

// DecodeMessage parses an alert published on the alerts queue. The body comes
// from the queue, so it is treated as untrusted: size-limited, every required
// field present, severity and kind known, text fields bounded and free of
// control characters (the title becomes an email header). Unknown JSON fields
// are ignored so that a newer publisher does not poison an older consumer
// during a deployment. Times are returned in UTC.
func DecodeMessage(body []byte) (wire.Alert, error) {
	if len(body) > MaxMessageBytes {
		return wire.Alert{}, fmt.Errorf("%w: message is %d bytes, more than the %d allowed", ErrInvalid, len(body), MaxMessageBytes)
	}
	var a wire.Alert
	if err := json.Unmarshal(body, &a); err != nil {
		return wire.Alert{}, fmt.Errorf("%w: message is not an alert in JSON: %v", ErrInvalid, err)
	}
	a.RaisedAt = a.RaisedAt.UTC()
	if a.AcknowledgedAt != nil {
		t := a.AcknowledgedAt.UTC()
		a.AcknowledgedAt = &t
	}
	if err := validate(a); err != nil {
		return wire.Alert{}, err
	}
	return a, nil
}

// validate checks everything DecodeMessage promises; Raise runs it too, so
// nothing is published that the consumer would refuse.
func validate(a wire.Alert) error {
	if err := checkID("alert id", a.ID); err != nil {
		return err
	}
	if err := checkID("vault id", a.VaultID); err != nil {
		return err
	}
	if a.MachineID != "" {
		if err := checkID("machine id", a.MachineID); err != nil {
			return err
		}
	}
	if err := checkSeverity(a.Severity); err != nil {
		return err
	}
	if err := checkKind(a.Kind); err != nil {
		return err
	}
	if strings.TrimSpace(a.Title) == "" {
		return fmt.Errorf("%w: title is required", ErrInvalid)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"jobId", a.JobID, MaxIDLen},
		{"vaultName", a.VaultName, MaxNameLen},
		{"machineName", a.MachineName, MaxNameLen},
		{"title", a.Title, MaxTitleLen},
		{"acknowledgedBy", a.AcknowledgedBy, MaxNameLen},
	} {
		if len(f.v) > f.max {
			return fmt.Errorf("%w: %s is %d bytes, more than the %d allowed", ErrInvalid, f.name, len(f.v), f.max)
		}
		if !singleLine(f.v) {
			return fmt.Errorf("%w: %s must be one line of text without control characters", ErrInvalid, f.name)
		}
	}
	if len(a.Detail) > MaxDetailLen {
		return fmt.Errorf("%w: detail is %d bytes, more than the %d allowed", ErrInvalid, len(a.Detail), MaxDetailLen)
	}
	if !plainText(a.Detail) {
		return fmt.Errorf("%w: detail may hold line feeds and tabs but no other control characters", ErrInvalid)
	}
	if len(a.Reported) > MaxReportedLen {
		return fmt.Errorf("%w: reported is %d bytes, more than the %d allowed", ErrInvalid, len(a.Reported), MaxReportedLen)
	}
	if !plainText(a.Reported) {
		return fmt.Errorf("%w: reported may hold line feeds and tabs but no other control characters", ErrInvalid)
	}
	if err := checkTime("raisedAt", a.RaisedAt); err != nil {
		return err
	}
	if a.AcknowledgedAt != nil {
		if err := checkTime("acknowledgedAt", *a.AcknowledgedAt); err != nil {
			return err
		}
	}
	return nil
}

func checkSeverity(s string) error {
	switch s {
	case wire.SeverityCritical, wire.SeverityWarning:
		return nil
	}
	return fmt.Errorf("%w: severity %q is unknown; use %q or %q", ErrInvalid, clip(s), wire.SeverityCritical, wire.SeverityWarning)
}

func checkKind(k string) error {
	switch k {
	case wire.AlertJobFailed, wire.AlertJobWarnings, wire.AlertCriticalOperation, wire.AlertMissedBackup, wire.AlertProtectionStopped,
		wire.AlertRansomware:
		return nil
	}
	return fmt.Errorf("%w: kind %q is unknown; use one of %s, %s, %s, %s, %s, %s", ErrInvalid, clip(k),
		wire.AlertJobFailed, wire.AlertJobWarnings, wire.AlertCriticalOperation, wire.AlertMissedBackup, wire.AlertProtectionStopped,
		wire.AlertRansomware)
}

// Times before 2000 are a zero value or a broken clock; years past 9999
// cannot be written as RFC 3339.
var minTime, maxTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)

func checkTime(what string, t time.Time) error {
	if t.Before(minTime) || !t.Before(maxTime) {
		return fmt.Errorf("%w: %s %s is missing or out of range", ErrInvalid, what, t.Format(time.RFC3339))
	}
	return nil
}

// singleLine is false for any control or line-separator character.
func singleLine(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

func plainText(s string) bool {
	for _, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// clip keeps error messages short when the input is not.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return truncate(s, 64, "…")
}

// truncate cuts s to at most max bytes on a rune boundary, ending in marker.
func truncate(s string, max int, marker string) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

// oneLine turns s into something singleLine accepts: runs of control
// characters become one space.
func oneLine(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// text turns s into something plainText accepts: CRLF and CR become LF and
// other control characters are dropped.
func text(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r':
			return '\n'
		case r == '\n' || r == '\t':
			return r
		case unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
}
