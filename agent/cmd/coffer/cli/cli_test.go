package cli

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/coffer-backup/coffer/agent/repository"
)

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{ErrWarnings, ExitWarnings},
		{fmt.Errorf("backup: %w", ErrWarnings), ExitWarnings},
		{Usagef("give --repo"), ExitUsage},
		{fmt.Errorf("open: %w", Usagef("give --repo")), ExitUsage},
		{errors.New("disk full"), ExitFailed},
		{fmt.Errorf("open: %w", repository.ErrNotRepository), ExitNoRepository},
		{fmt.Errorf("open: %w", repository.ErrWrongPassphrase), ExitWrongPassphrase},
		{fmt.Errorf("backup: %w", ErrInterrupted), ExitInterrupted},
		{fmt.Errorf("upload: %w", context.Canceled), ExitInterrupted},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 29: "1.5 GiB", 5 << 40: "5.0 TiB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
