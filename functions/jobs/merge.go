package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Bounds on what one job keeps. Table storage limits an entity to 1 MiB and
// a string property to 64 KiB, both counted in UTF-16, so everything an
// agent sends is bounded before it is stored.
const (
	// MaxSkipped is how many distinct skipped files a job lists. Later ones
	// are only counted. Long paths can lower the number: the list is also
	// held to skippedBudget.
	MaxSkipped = 1000
	// MaxPathRunes and MaxReasonRunes bound one skipped entry; a longer path
	// keeps its end (the file name) behind an ellipsis.
	MaxPathRunes   = 4096
	MaxReasonRunes = 512
	// MaxMessageRunes bounds a job's message; a longer one is cut.
	MaxMessageRunes = 4096
	// MaxMachineNameRunes, maxCodeLen and maxPointIDLen are refused beyond.
	MaxMachineNameRunes = 256
	maxCodeLen          = 128
	maxPointIDLen       = 256

	// The skipped list is stored as JSON split over numbered properties of
	// at most skippedChunk UTF-16 units (60 KB, under the 64 KiB limit). The
	// budget caps the whole list at about 700 KB, leaving room in the 1 MiB
	// entity for everything else.
	skippedChunk     = 30_000
	skippedMaxChunks = 12
	skippedBudget    = 350_000 // < skippedMaxChunks*(skippedChunk-1): a split never needs a 13th chunk
)

var (
	jobTypes = map[string]bool{
		wire.JobBackup: true, wire.JobRestore: true, wire.JobRegister: true,
		wire.JobConfigure: true, wire.JobDisable: true, wire.JobDeleteData: true,
	}
	statuses = map[string]bool{
		wire.StatusInProgress: true, wire.StatusCompleted: true, wire.StatusCompletedWithWarnings: true,
		wire.StatusFailed: true, wire.StatusCancelled: true,
	}
)

// Terminal reports whether a job in status has ended.
func Terminal(status string) bool {
	return statuses[status] && status != wire.StatusInProgress
}

// record is a job as stored: the listed skipped files plus a count of those
// beyond the cap.
type record struct {
	job         wire.Job // Skipped holds only listed entries, never the summary
	skippedMore int64
	// failedStale: the server failed the job (FailStale) because its agent
	// went silent, not the agent. That is a guess about an outcome the
	// agent may still report, so a late outcome replaces it (apply).
	failedStale bool
}

// checkReport validates a report and returns it with its free text bounded.
// It needs no stored state, so it runs before any request to storage.
func checkReport(r wire.JobReport) (wire.JobReport, error) {
	if !statuses[r.Status] {
		return r, fmt.Errorf("%w: status %q is unknown; use one of in_progress, completed, completed_with_warnings, failed, cancelled", ErrInvalid, r.Status)
	}
	p := r.Progress
	if p.FilesDone < 0 || p.FilesTotal < 0 || p.BytesDone < 0 || p.BytesTotal < 0 || p.BytesUploaded < 0 {
		return r, fmt.Errorf("%w: progress counters must not be negative, got %+v", ErrInvalid, p)
	}
	switch {
	case r.Status == wire.StatusFailed && r.ErrorCode == "":
		return r, fmt.Errorf("%w: a failed report needs an errorCode saying what went wrong", ErrInvalid)
	case r.ErrorCode != "" && r.Status != wire.StatusFailed && r.Status != wire.StatusCancelled:
		return r, fmt.Errorf("%w: errorCode %q is only for failed or cancelled reports, not %s", ErrInvalid, r.ErrorCode, r.Status)
	case len(r.ErrorCode) > maxCodeLen || !printable(r.ErrorCode):
		return r, fmt.Errorf("%w: errorCode must be at most %d printable characters", ErrInvalid, maxCodeLen)
	case len(r.PointID) > maxPointIDLen || !printable(r.PointID):
		return r, fmt.Errorf("%w: pointId must be at most %d printable characters", ErrInvalid, maxPointIDLen)
	}
	if c := r.Change; c != nil {
		if c.ParentFiles < 0 || c.Files < 0 || c.Changed < 0 || c.Renamed < 0 || c.Incompressible < 0 || c.Overwritten < 0 ||
			c.NewExtension < 0 || c.TopNewExtension < 0 || c.Deleted < 0 {
			return r, fmt.Errorf("%w: change counters must not be negative, got %+v", ErrInvalid, *c)
		}
	}
	r.Message = truncate(r.Message, MaxMessageRunes)
	if len(r.Skipped) > 0 {
		sk := make([]wire.Skipped, len(r.Skipped))
		for i, e := range r.Skipped {
			if e.Path == "" {
				return r, fmt.Errorf("%w: skipped entry %d has no path; every skipped file needs its path", ErrInvalid, i)
			}
			sk[i] = wire.Skipped{Path: truncateHead(e.Path, MaxPathRunes), Reason: truncate(e.Reason, MaxReasonRunes)}
		}
		r.Skipped = sk
	}
	return r, nil
}

// apply merges a checked report into a stored job at server time now.
// Counters only grow, skipped files are added once each, and a job that has
// ended takes no more reports (ErrFinished), except one failed by the
// server for silence: the agent's own outcome, arriving late (kept on the
// machine through an outage, say), replaces that failure, since it says
// what really happened. A late progress report does not reopen it.
func apply(rec *record, r wire.JobReport, now time.Time) error {
	j := &rec.job
	if Terminal(j.Status) {
		if !rec.failedStale || !Terminal(r.Status) {
			return fmt.Errorf("%w: job %s ended as %s; start a new job instead of reporting on this one", ErrFinished, j.ID, j.Status)
		}
		rec.failedStale = false
		j.Status, j.ErrorCode, j.Message, j.EndedAt = wire.StatusInProgress, "", "", nil
	}
	j.Progress = maxProgress(j.Progress, r.Progress)
	if len(r.Skipped) > 0 {
		addSkipped(rec, r.Skipped)
	}
	if r.Message != "" {
		j.Message = r.Message
	}
	if r.ErrorCode != "" {
		j.ErrorCode = r.ErrorCode
	}
	if r.PointID != "" {
		j.PointID = r.PointID
	}
	if r.Change != nil {
		ch := *r.Change
		j.Change = &ch
	}
	warned := len(j.Skipped) > 0 || rec.skippedMore > 0
	status := r.Status
	switch {
	case status == wire.StatusCompletedWithWarnings && !warned:
		return fmt.Errorf("%w: completed_with_warnings needs the skipped files; send them in skipped, or report completed", ErrInvalid)
	case status == wire.StatusCompleted && warned:
		// Files were skipped earlier in the job: the outcome must show it, as
		// MARS does, or the warning (and its alert) would be lost.
		status = wire.StatusCompletedWithWarnings
	}
	j.Status = status
	j.UpdatedAt = now
	if Terminal(status) {
		t := now
		j.EndedAt = &t
	}
	return nil
}

func maxProgress(a, b wire.Progress) wire.Progress {
	return wire.Progress{
		FilesDone:     max(a.FilesDone, b.FilesDone),
		FilesTotal:    max(a.FilesTotal, b.FilesTotal),
		BytesDone:     max(a.BytesDone, b.BytesDone),
		BytesTotal:    max(a.BytesTotal, b.BytesTotal),
		BytesUploaded: max(a.BytesUploaded, b.BytesUploaded),
	}
}

// addSkipped appends the entries whose paths are new while the list has
// room, and counts the rest. Beyond the cap paths are no longer known, so a
// path reported twice there is counted twice: skippedMore is an upper bound.
func addSkipped(rec *record, add []wire.Skipped) {
	seen := make(map[string]bool, len(rec.job.Skipped)+len(add))
	size := 2 // []
	for _, e := range rec.job.Skipped {
		seen[e.Path] = true
		size += entrySize(e)
	}
	for _, e := range add {
		if seen[e.Path] {
			continue
		}
		n := entrySize(e)
		if len(rec.job.Skipped) >= MaxSkipped || size+n > skippedBudget {
			rec.skippedMore++
			continue
		}
		seen[e.Path] = true
		size += n
		rec.job.Skipped = append(rec.job.Skipped, e)
	}
}

// entrySize is e's encoded size in UTF-16 units, with its comma.
func entrySize(e wire.Skipped) int {
	b, _ := marshalJSON(e)
	return utf16Len(string(b)) + 1
}

// marshalJSON encodes without HTML escaping, so sizes are what is stored.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// splitUTF16 cuts s into pieces of at most n UTF-16 units, on rune
// boundaries.
func splitUTF16(s string, n int) []string {
	var out []string
	for s != "" {
		units, i := 0, 0
		for i < len(s) {
			r, size := utf8.DecodeRuneInString(s[i:])
			u := utf16.RuneLen(r)
			if units+u > n {
				break
			}
			units += u
			i += size
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}

// truncate keeps the first n runes of s.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// truncateHead keeps the last n runes of s: for a path, the file name.
func truncateHead(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return "…" + string(r[len(r)-(n-1):])
}

func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
