package main

import (
	"context"
	"fmt"
	"io"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

// backupInterrupted turns a backup stopped by Ctrl-C or SIGTERM into one
// line saying what is kept, and exit 130, instead of whichever internal
// error the cancellation surfaced as in some stage (context canceled, a
// tree left incomplete). What was uploaded is indexed even then
// (BlobWriter.Finish saves the index on every path), so the next backup
// skips it. Any other error is returned as it is. Standalone and in vault
// mode alike.
func backupInterrupted(ctx context.Context, w io.Writer, p *archiver.Progress, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	fmt.Fprintf(w, "interrupted: %.1f MiB already stored will be reused by the next backup\n", float64(p.BytesStored.Load())/(1<<20))
	return cli.ErrInterrupted
}
