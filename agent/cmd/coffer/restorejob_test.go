package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/shared/wire"
)

func TestRestoreOutcomeReport(t *testing.T) {
	p := &repository.Point{ID: strings.Repeat("ab", 32)}
	ok := &restorer.Result{Files: 3, Dirs: 1}
	warned := &restorer.Result{Files: 3, Warnings: []restorer.Failure{{Path: "a", Err: "owner not set"}}}
	failed := &restorer.Result{Files: 2, Failed: []restorer.Failure{{Path: "b", Err: "disk full"}}}
	for _, tc := range []struct {
		name      string
		o         restoreOutcome
		ctxErr    error
		status    string
		code      string
		inMessage string
		skipped   int
		wantPoint bool
	}{
		{"completed", restoreOutcome{point: p, target: "/t", res: ok}, nil, wire.StatusCompleted, "", "point abababababab to /t: 3 files", 0, true},
		{"from another machine", restoreOutcome{point: p, source: "web-01", target: "/t", res: ok}, nil, wire.StatusCompleted, "", "of machine web-01 to /t", 0, true},
		{"warnings", restoreOutcome{point: p, target: "/t", res: warned}, nil, wire.StatusCompletedWithWarnings, "", "3 files", 1, true},
		{"some paths not restored", restoreOutcome{point: p, target: "/t", res: failed}, nil, wire.StatusFailed, "restore_incomplete", "1 paths not restored", 1, true},
		{"failed", restoreOutcome{point: p, target: "/t", err: errors.New("target is a file")}, nil, wire.StatusFailed, "restore_failed", "target is a file", 0, true},
		{"cancelled", restoreOutcome{point: p, target: "/t", err: context.Canceled}, context.Canceled, wire.StatusCancelled, "cancelled", "stopped on the machine", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.o.report(tc.ctxErr)
			if r.Status != tc.status || r.ErrorCode != tc.code || !strings.Contains(r.Message, tc.inMessage) || len(r.Skipped) != tc.skipped {
				t.Errorf("report = %+v, want status %s, code %q, message with %q, %d skipped", r, tc.status, tc.code, tc.inMessage, tc.skipped)
			}
			if (r.PointID == p.ID) != tc.wantPoint {
				t.Errorf("point %q, want it named: %v", r.PointID, tc.wantPoint)
			}
		})
	}
}
