package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/wire"
)

// The outcome of a backup that returned an error is decided by whether
// the caller cancelled it, never by what the error wraps (issue 17, bug 1:
// a failed upload was recorded as cancelled, and raised no alert).
func TestFailureReportCancelledOnlyWhenTheCallerCancelled(t *testing.T) {
	live := t.Context()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithTimeout(t.Context(), 0)
	defer cancel2()
	<-expired.Done()

	upload := fmt.Errorf("upload pack 34c0: create data/34/34c0: %w", storage.ErrPermission)
	for _, c := range []struct {
		name        string
		ctx         context.Context
		err         error
		status      string
		code        string
		wantMessage string
	}{
		{"upload failed", live, upload, wire.StatusFailed, "backup_failed", "data/34/34c0"},
		// What the archiver returned before the fix: the cause joined with
		// the cancellation it caused.
		{"upload failed, joined with the stop it caused", live, errors.Join(upload, context.Canceled), wire.StatusFailed, "backup_failed", "permission denied"},
		{"wrong passphrase", live, fmt.Errorf("open: %w", repository.ErrWrongPassphrase), wire.StatusFailed, "wrong_passphrase", "passphrase"},
		{"caller cancelled", cancelled, context.Canceled, wire.StatusCancelled, "cancelled", "stopped on the machine"},
		{"caller cancelled while an upload failed", cancelled, upload, wire.StatusCancelled, "cancelled", "stopped on the machine"},
		{"caller's deadline passed", expired, context.DeadlineExceeded, wire.StatusFailed, "timeout", "deadline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := failureReport(c.ctx, c.err)
			if r.Status != c.status || r.ErrorCode != c.code {
				t.Fatalf("report = %s/%s, want %s/%s", r.Status, r.ErrorCode, c.status, c.code)
			}
			if !strings.Contains(r.Message, c.wantMessage) {
				t.Fatalf("message %q does not say %q", r.Message, c.wantMessage)
			}
		})
	}
}
