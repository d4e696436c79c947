package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Errors a client can act on map to their status; a store that lost every
// race to other writers is "retry", never a server fault.
func TestClassifyStoreErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("record point: %w: %w", points.ErrContended, errors.New("412")), http.StatusServiceUnavailable, wire.CodeUnavailable},
		{fmt.Errorf("x: %w", points.ErrNotFound), http.StatusNotFound, wire.CodeNotFound},
		{fmt.Errorf("x: %w", points.ErrLimit), http.StatusConflict, wire.CodeConflict},
		{errors.New("something else"), 0, ""},
	} {
		he := classify(tc.err)
		switch {
		case tc.status == 0 && he != nil:
			t.Errorf("%v: classified as %d %s, want unclassified", tc.err, he.status, he.body.Code)
		case tc.status != 0 && (he == nil || he.status != tc.status || he.body.Code != tc.code):
			t.Errorf("%v: got %+v, want %d %s", tc.err, he, tc.status, tc.code)
		}
	}
}
