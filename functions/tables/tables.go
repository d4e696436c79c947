// Package tables holds the few things every Table storage store in the
// control plane needs: status checks, sortable times, safe keys and a
// typed query. Entities are plain structs with PartitionKey and RowKey.
package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Status reports whether err is a Table storage answer with that HTTP status.
func Status(err error, code int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

// NotFound, Exists and Changed name the statuses stores act on.
func NotFound(err error) bool { return Status(err, http.StatusNotFound) }
func Exists(err error) bool   { return Status(err, http.StatusConflict) }
func Changed(err error) bool  { return Status(err, http.StatusPreconditionFailed) }

// Ensure creates a table if it is missing.
func Ensure(ctx context.Context, c *aztables.Client) error {
	if _, err := c.CreateTable(ctx, nil); err != nil && !Exists(err) {
		return fmt.Errorf("create table: %w", err)
	}
	return nil
}

// timeLayout sorts as text in time order: fixed width, always UTC.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Time renders t so that string order is time order.
func Time(t time.Time) string { return t.UTC().Format(timeLayout) }

// ParseTime reads Time's form; the zero time for "".
func ParseTime(s string) time.Time {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Inverted renders t so that newer times sort first.
func Inverted(t time.Time) string {
	return fmt.Sprintf("%019d", int64(1<<62)-t.UnixNano())
}

// CheckID accepts the IDs this control plane makes (lower-case letters,
// digits and hyphens, up to 64), so no caller-supplied ID can change the
// meaning of an OData filter.
func CheckID(what, id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%s ID must be 1 to 64 characters", what)
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%s ID %q may contain only lower-case letters, digits and hyphens", what, id)
		}
	}
	return nil
}

// Get reads one entity into v and returns its ETag.
func Get(ctx context.Context, c *aztables.Client, pk, rk string, v any) (azcore.ETag, error) {
	resp, err := c.GetEntity(ctx, pk, rk, nil)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(resp.Value, v); err != nil {
		return "", fmt.Errorf("decode entity %s/%s: %w", pk, rk, err)
	}
	return resp.ETag, nil
}

// Add inserts v; it fails with a 409 (Exists) when the key is taken.
func Add(ctx context.Context, c *aztables.Client, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.AddEntity(ctx, b, nil)
	return err
}

// Replace writes v over the entity if it still has etag ("" = unconditionally).
func Replace(ctx context.Context, c *aztables.Client, v any, etag azcore.ETag) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	opts := &aztables.UpdateEntityOptions{UpdateMode: aztables.UpdateModeReplace}
	if etag != "" {
		opts.IfMatch = &etag
	}
	_, err = c.UpdateEntity(ctx, b, opts)
	return err
}

// Upsert writes v whether or not it exists.
func Upsert(ctx context.Context, c *aztables.Client, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.UpsertEntity(ctx, b, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
	return err
}

// Delete removes an entity; a missing one is not an error.
func Delete(ctx context.Context, c *aztables.Client, pk, rk string) error {
	if _, err := c.DeleteEntity(ctx, pk, rk, nil); err != nil && !NotFound(err) {
		return err
	}
	return nil
}

// Query returns every entity matching filter (OData; build it only from
// checked IDs), decoded as T, up to limit (0 = all).
func Query[T any](ctx context.Context, c *aztables.Client, filter string, limit int) ([]T, error) {
	opts := &aztables.ListEntitiesOptions{}
	if filter != "" {
		opts.Filter = to.Ptr(filter)
	}
	var out []T
	pager := c.NewListEntitiesPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, raw := range page.Entities {
			var v T
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("decode entity: %w", err)
			}
			out = append(out, v)
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
	}
	return out, nil
}
