package jobs

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Keys. IDs hold only [a-z0-9-] (checkID), so they cannot contain the
// separator "~" (0x7E), which sorts after every character they can hold:
//
//	PartitionKey = vaultID + "~" + machineID
//	RowKey       = job ID = 16 hex digits of (MaxInt64 - StartedAt in ns) + "-" + 8 random hex digits
//
// One machine's jobs are one partition, newest first. A vault's jobs are
// the range "vaultID~" <= PartitionKey < "vaultID~~": every machine ID sorts
// below "~". A time bound is a RowKey bound, so it narrows the scan instead
// of filtering it.
const (
	sep       = "~"
	maxIDLen  = 128
	idHexLen  = 16
	randHexes = 8
)

func partitionKey(vaultID, machineID string) string { return vaultID + sep + machineID }

// invertedHex is the RowKey prefix for t: newer times give smaller strings.
// Times outside what UnixNano holds (1970 to 2262) are clamped, which keeps
// them correct as filter bounds.
func invertedHex(t time.Time) string {
	var ns int64
	switch {
	case t.Before(time.Unix(0, 0)):
		ns = 0
	case t.After(time.Unix(0, math.MaxInt64)):
		ns = math.MaxInt64
	default:
		ns = t.UnixNano()
	}
	return fmt.Sprintf("%0*x", idHexLen, math.MaxInt64-ns)
}

// checkID refuses anything but 1 to 128 of [a-z0-9-]: such an ID can go into
// a key and an OData literal as it is, and cannot hold the separator.
func checkID(what, id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: %s ID must be 1 to %d characters, got %d", ErrInvalid, what, maxIDLen, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w: %s ID %q may hold only lower-case letters, digits and hyphens", ErrInvalid, what, id)
		}
	}
	return nil
}

// checkJobID also insists on the shape Create makes.
func checkJobID(id string) error {
	if err := checkID("job", id); err != nil {
		return err
	}
	if len(id) != idHexLen+1+randHexes || id[idHexLen] != '-' {
		return fmt.Errorf("%w: job ID %q is not one this service issued; copy it from the job's creation or a list", ErrInvalid, id)
	}
	return nil
}

// quote makes an OData string literal. Every value is checked before it
// gets here; doubling quotes is a second line of defence.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// dateTime makes an OData datetime literal.
func dateTime(t time.Time) string {
	return "datetime'" + t.UTC().Format("2006-01-02T15:04:05.0000000Z") + "'"
}

// serverTime is a clock reading as stored. Edm.DateTime holds 100 ns; keep
// microseconds so a time reads back exactly as it was written.
func serverTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Columns. Type, Status, StartedAt and UpdatedAt are typed (Edm.DateTime
// for times, Edm.Int64 for counters) so admins can filter on them, here and
// in Storage Explorer.
const (
	colSkipped     = "Skipped" // Skipped00, Skipped01, ...: one JSON array split
	colSkippedMore = "SkippedMore"
	colFailedStale = "FailedStale" // true when FailStale ended the job
	colChange      = "Change"      // a backup's change counters, as JSON
)

func encode(rec *record) ([]byte, error) {
	j := &rec.job
	p := map[string]any{
		"VaultID":       j.VaultID,
		"MachineID":     j.MachineID,
		"MachineName":   j.MachineName,
		"Type":          j.Type,
		"Status":        j.Status,
		"StartedAt":     aztables.EDMDateTime(j.StartedAt.UTC()),
		"UpdatedAt":     aztables.EDMDateTime(j.UpdatedAt.UTC()),
		"FilesDone":     aztables.EDMInt64(j.Progress.FilesDone),
		"FilesTotal":    aztables.EDMInt64(j.Progress.FilesTotal),
		"BytesDone":     aztables.EDMInt64(j.Progress.BytesDone),
		"BytesTotal":    aztables.EDMInt64(j.Progress.BytesTotal),
		"BytesUploaded": aztables.EDMInt64(j.Progress.BytesUploaded),
	}
	if j.EndedAt != nil {
		p["EndedAt"] = aztables.EDMDateTime(j.EndedAt.UTC())
	}
	for k, v := range map[string]string{"ErrorCode": j.ErrorCode, "Message": j.Message, "PointID": j.PointID} {
		if v != "" {
			p[k] = v
		}
	}
	if rec.skippedMore > 0 {
		p[colSkippedMore] = aztables.EDMInt64(rec.skippedMore)
	}
	if rec.failedStale {
		p[colFailedStale] = true
	}
	if j.Change != nil {
		b, err := json.Marshal(j.Change)
		if err != nil {
			return nil, fmt.Errorf("encode change counters of job %s: %w", j.ID, err)
		}
		p[colChange] = string(b)
	}
	if len(j.Skipped) > 0 {
		b, err := marshalJSON(j.Skipped)
		if err != nil {
			return nil, fmt.Errorf("encode skipped files of job %s: %w", j.ID, err)
		}
		chunks := splitUTF16(string(b), skippedChunk)
		if len(chunks) > skippedMaxChunks {
			// addSkipped keeps the list within the budget; this is a bug.
			return nil, fmt.Errorf("skipped files of job %s need %d properties, over %d", j.ID, len(chunks), skippedMaxChunks)
		}
		for i, c := range chunks {
			p[fmt.Sprintf("%s%02d", colSkipped, i)] = c
		}
	}
	return json.Marshal(aztables.EDMEntity{
		Entity:     aztables.Entity{PartitionKey: partitionKey(j.VaultID, j.MachineID), RowKey: j.ID},
		Properties: p,
	})
}

func decode(b []byte) (*record, string, error) {
	var e aztables.EDMEntity
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, "", fmt.Errorf("decode job entity: %w", err)
	}
	p := e.Properties
	rec := &record{job: wire.Job{
		ID:          e.RowKey,
		VaultID:     str(p, "VaultID"),
		MachineID:   str(p, "MachineID"),
		MachineName: str(p, "MachineName"),
		Type:        str(p, "Type"),
		Status:      str(p, "Status"),
		StartedAt:   timeOf(p, "StartedAt"),
		UpdatedAt:   timeOf(p, "UpdatedAt"),
		Progress: wire.Progress{
			FilesDone:     int64Of(p, "FilesDone"),
			FilesTotal:    int64Of(p, "FilesTotal"),
			BytesDone:     int64Of(p, "BytesDone"),
			BytesTotal:    int64Of(p, "BytesTotal"),
			BytesUploaded: int64Of(p, "BytesUploaded"),
		},
		ErrorCode: str(p, "ErrorCode"),
		Message:   str(p, "Message"),
		PointID:   str(p, "PointID"),
	}, skippedMore: int64Of(p, colSkippedMore)}
	rec.failedStale, _ = p[colFailedStale].(bool)
	if _, ok := p["EndedAt"]; ok {
		t := timeOf(p, "EndedAt")
		rec.job.EndedAt = &t
	}
	if c, ok := p[colChange].(string); ok && c != "" {
		rec.job.Change = new(wire.ChangeCounters)
		if err := json.Unmarshal([]byte(c), rec.job.Change); err != nil {
			return nil, "", fmt.Errorf("decode change counters of job %s: %w", e.RowKey, err)
		}
	}
	var sb strings.Builder
	for i := 0; ; i++ {
		c, ok := p[fmt.Sprintf("%s%02d", colSkipped, i)].(string)
		if !ok {
			break
		}
		sb.WriteString(c)
	}
	if sb.Len() > 0 {
		if err := json.Unmarshal([]byte(sb.String()), &rec.job.Skipped); err != nil {
			return nil, "", fmt.Errorf("decode skipped files of job %s: %w", e.RowKey, err)
		}
	}
	return rec, e.ETag, nil
}

func str(p map[string]any, k string) string { s, _ := p[k].(string); return s }

// int64Of and timeOf also take the untyped forms, in case a row was
// written by hand without type annotations.
func int64Of(p map[string]any, k string) int64 {
	switch v := p[k].(type) {
	case aztables.EDMInt64:
		return int64(v)
	case int32:
		return int64(v)
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

func timeOf(p map[string]any, k string) time.Time {
	switch v := p[k].(type) {
	case aztables.EDMDateTime:
		return time.Time(v).UTC()
	case string:
		t, _ := time.Parse(time.RFC3339Nano, v)
		return t.UTC()
	}
	return time.Time{}
}

func (rec *record) clone() *record {
	c := *rec
	c.job.Skipped = slices.Clone(rec.job.Skipped)
	if rec.job.EndedAt != nil {
		t := *rec.job.EndedAt
		c.job.EndedAt = &t
	}
	if rec.job.Change != nil {
		ch := *rec.job.Change
		c.job.Change = &ch
	}
	return &c
}

// view is the job as the API shows it: when files beyond the cap were
// only counted, a last entry with an empty path says how many (agents
// cannot send an empty path, so it is unambiguous).
func (rec *record) view() wire.Job {
	j := rec.job
	j.Skipped = append([]wire.Skipped(nil), rec.job.Skipped...)
	if rec.skippedMore > 0 {
		j.Skipped = append(j.Skipped, wire.Skipped{
			Reason: fmt.Sprintf("%d more skipped files are not listed: a job lists at most %d", rec.skippedMore, MaxSkipped),
		})
	}
	if len(j.Skipped) == 0 {
		j.Skipped = nil
	}
	return j
}
