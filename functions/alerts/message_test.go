package alerts

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

const validBody = `{"id":"9223-abc","vaultId":"contoso-robo","vaultName":"Contoso ROBO","machineId":"m-01","machineName":"branch-01","jobId":"job-42","severity":"critical","kind":"job_failed","title":"Backup failed on branch-01","detail":"Disk D: missing.\nReconnect it.","raisedAt":"2026-11-22T10:00:00.123456+01:00","acknowledged":false}`

func TestDecodeMessageAcceptsAValidAlert(t *testing.T) {
	a, err := DecodeMessage([]byte(validBody))
	if err != nil {
		t.Fatalf("DecodeMessage: %v", err)
	}
	want := wire.Alert{
		ID: "9223-abc", VaultID: "contoso-robo", VaultName: "Contoso ROBO", MachineID: "m-01", MachineName: "branch-01",
		JobID: "job-42", Severity: wire.SeverityCritical, Kind: wire.AlertJobFailed, Title: "Backup failed on branch-01",
		Detail: "Disk D: missing.\nReconnect it.", RaisedAt: time.Date(2026, 11, 22, 9, 0, 0, 123456000, time.UTC),
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("got  %+v\nwant %+v", a, want)
	}
}

func TestDecodeMessageRefusesBadBodies(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(validBody, old) {
			t.Fatalf("%q not in the valid body", old)
		}
		return strings.Replace(validBody, old, new, 1)
	}
	for _, tc := range []struct{ name, body string }{
		{"empty", ""},
		{"not JSON", "alert!"},
		{"array", "[]"},
		{"null", "null"},
		{"trailing data", validBody + "{}"},
		{"too large", validBody[:len(validBody)-1] + `,"pad":"` + strings.Repeat("x", MaxMessageBytes) + `"}`},
		{"no id", replace(`"id":"9223-abc",`, "")},
		{"upper-case id", replace(`"id":"9223-abc"`, `"id":"9223-ABC"`)},
		{"no vault", replace(`"vaultId":"contoso-robo",`, "")},
		{"quote in vault", replace(`"vaultId":"contoso-robo"`, `"vaultId":"x' or true"`)},
		{"bad machine", replace(`"machineId":"m-01"`, `"machineId":"m 01"`)},
		{"unknown severity", replace(`"severity":"critical"`, `"severity":"info"`)},
		{"no severity", replace(`"severity":"critical",`, "")},
		{"unknown kind", replace(`"kind":"job_failed"`, `"kind":"disk_full"`)},
		{"no title", replace(`"title":"Backup failed on branch-01",`, "")},
		{"blank title", replace(`"title":"Backup failed on branch-01"`, `"title":"  "`)},
		{"header injection in title", replace(`"title":"Backup failed on branch-01"`, `"title":"x\r\nBcc: a@b.c"`)},
		{"line break in vault name", replace(`"vaultName":"Contoso ROBO"`, `"vaultName":"a\u2028b"`)},
		{"control character in detail", replace(`"detail":"Disk D: missing.`, `"detail":"\u001b[2J`)},
		{"long title", replace(`"title":"Backup failed on branch-01"`, `"title":"`+strings.Repeat("x", MaxTitleLen+1)+`"`)},
		{"long detail", replace(`"detail":"Disk D: missing.`, `"detail":"`+strings.Repeat("x", MaxDetailLen))},
		{"no time", replace(`"raisedAt":"2026-11-22T10:00:00.123456+01:00",`, "")},
		{"zero time", replace(`"raisedAt":"2026-11-22T10:00:00.123456+01:00"`, `"raisedAt":"0001-01-01T00:00:00Z"`)},
		{"bad time", replace(`"raisedAt":"2026-11-22T10:00:00.123456+01:00"`, `"raisedAt":"yesterday"`)},
		{"wrong type", replace(`"acknowledged":false`, `"acknowledged":"no"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a, err := DecodeMessage([]byte(tc.body)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeMessage = %+v, %v; want ErrInvalid", a, err)
			}
		})
	}
}

func TestDecodeMessageIgnoresUnknownFields(t *testing.T) {
	// A newer publisher may add fields; an older consumer must not
	// dead-letter its alerts.
	body := strings.Replace(validBody, `{`, `{"runbookUrl":"https://example.com",`, 1)
	if _, err := DecodeMessage([]byte(body)); err != nil {
		t.Fatal(err)
	}
}

func TestIDsSortNewestFirst(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	older, _ := newID(t0)
	newer, _ := newID(t0.Add(time.Microsecond))
	much, _ := newID(t0.AddDate(200, 0, 0))
	if !(much < newer && newer < older) || !ValidID(older) {
		t.Fatalf("ids %s %s %s do not sort newest first", much, newer, older)
	}
	bound, ok := sinceBound(t0)
	if !ok || !(older < bound) || !(newer < bound) {
		t.Fatalf("since bound %s must admit both %s and %s", bound, older, newer)
	}
	if bound, _ := sinceBound(t0.Add(time.Nanosecond)); older < bound {
		t.Fatalf("since bound %s must exclude %s", bound, older)
	}
}

// Text a machine reported is kept apart from Coffer's own detail, bounded
// and free of control characters, like the detail.
func TestReportedTextRules(t *testing.T) {
	base := wire.Alert{ID: "1-a", VaultID: "v1", Severity: wire.SeverityCritical, Kind: wire.AlertJobFailed,
		Title: "Backup failed", RaisedAt: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		name     string
		reported string
		ok       bool
	}{
		{"none", "", true},
		{"lines and tabs", "error code: disk\n\tread error", true},
		{"escape sequence", "\x1b[31mred", false},
		{"too long", strings.Repeat("x", MaxReportedLen+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			a.Reported = tc.reported
			b, _ := json.Marshal(a)
			got, err := DecodeMessage(b)
			if (err == nil) != tc.ok {
				t.Fatalf("DecodeMessage: %v, want ok=%v", err, tc.ok)
			}
			if err == nil && got.Reported != tc.reported {
				t.Fatalf("reported %q, want %q", got.Reported, tc.reported)
			}
			if tidied := tidy(a); validate(tidied) != nil {
				t.Fatalf("tidy does not make it valid: %v", validate(tidied))
			}
		})
	}
}
