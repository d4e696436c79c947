package azureblob

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/retry"
)

const sasQuery = "sv=2024-08-04&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=crl&sig=SECRETSIG%2Bx%3D"

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in, location, account, container, perms string
	}{
		{"https://acct.blob.core.windows.net/backups?" + sasQuery, "https://acct.blob.core.windows.net/backups", "", "backups", "crl"},
		{"https://acct.blob.core.windows.net/backups/?" + sasQuery, "https://acct.blob.core.windows.net/backups", "", "backups", "crl"},
		{"  http://127.0.0.1:10000/devstoreaccount1/backups?" + sasQuery + "\n", "http://127.0.0.1:10000/devstoreaccount1/backups", "devstoreaccount1", "backups", "crl"},
		{"http://localhost/devstoreaccount1/c-1?" + sasQuery, "http://localhost/devstoreaccount1/c-1", "devstoreaccount1", "c-1", "crl"},
		{"http://azurite:10000/devstoreaccount1/abc?" + sasQuery, "http://azurite:10000/devstoreaccount1/abc", "devstoreaccount1", "abc", "crl"},
		{"HTTPS://acct.blob.core.windows.net:443/abc?" + sasQuery, "https://acct.blob.core.windows.net:443/abc", "", "abc", "crl"},
	} {
		u, err := ParseURL(c.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.in, err)
			continue
		}
		if u.String() != c.location || u.Account != c.account || u.Container != c.container || u.Permissions != c.perms {
			t.Errorf("ParseURL(%q) = %+v, want location %s account %q container %q perms %q", c.in, u, c.location, c.account, c.container, c.perms)
		}
		if want := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC); !u.Expiry.Equal(want) {
			t.Errorf("ParseURL(%q) expiry %v, want %v", c.in, u.Expiry, want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, c := range []struct{ in, says string }{
		{"https://acct.blob.core.windows.net/backups", "no SAS token"},
		{"https://acct.blob.core.windows.net/backups?sv=2024-08-04&sp=crl", "no SAS token"},
		{"https://acct.blob.core.windows.net/?" + sasQuery, "names no container"},
		{"https://acct.blob.core.windows.net?" + sasQuery, "names no container"},
		{"http://127.0.0.1:10000/devstoreaccount1?" + sasQuery, "names no container"},
		{"https://acct.blob.core.windows.net/backups/data/x?" + sasQuery, "inside a container"},
		{"https://acct.blob.core.windows.net/Backups?" + sasQuery, "not a valid container name"},
		{"https://acct.blob.core.windows.net/ab?" + sasQuery, "not a valid container name"},
		{"https://acct.blob.core.windows.net/a--b?" + sasQuery, "not a valid container name"},
		{"ftp://acct.blob.core.windows.net/backups?" + sasQuery, "must start with https://"},
		{"https:///backups?" + sasQuery, "no host"},
		{"https://acct.blob.core.windows.net:x/backups?" + sasQuery, "does not parse"},
		{"https://acct.blob.core.windows.net/backups?%zz&" + sasQuery, "does not parse"},
	} {
		_, err := ParseURL(c.in)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseURL(%q): got %v, want an error saying %q", c.in, err, c.says)
			continue
		}
		if strings.Contains(err.Error(), "SECRETSIG") {
			t.Errorf("ParseURL(%q): error %q shows the signature", c.in, err)
		}
	}
}

// fake answers every request with the status, or fails with err.
type fake struct {
	status int
	code   string
	err    error
	calls  int
}

func (f *fake) RoundTrip(r *http.Request) (*http.Response, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	h := http.Header{}
	if f.code != "" {
		h.Set("x-ms-error-code", f.code)
	}
	return &http.Response{StatusCode: f.status, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func fakeBackend(t *testing.T, f *fake, query string) *Backend {
	t.Helper()
	b, err := New("https://acct.blob.core.windows.net/backups?"+query, Options{
		HTTPClient: &http.Client{Transport: f},
		Retry:      &policy.RetryOptions{MaxRetries: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestErrorsInStorageTerms(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		name      string
		f         *fake
		op        func(*Backend) error
		sentinel  error
		transient bool
		says      string
	}{
		{"503", &fake{status: 503, code: "ServerBusy"}, func(b *Backend) error { _, err := b.Stat(ctx, "x"); return err }, nil, true, "HTTP 503 ServerBusy"},
		{"429", &fake{status: 429}, func(b *Backend) error { return b.Create(ctx, "x", []byte("x")) }, nil, true, "HTTP 429"},
		{"404", &fake{status: 404, code: "BlobNotFound"}, func(b *Backend) error { _, err := b.Read(ctx, "x", 0, -1); return err }, storage.ErrNotFound, false, "object not found"},
		{"409", &fake{status: 409, code: "BlobAlreadyExists"}, func(b *Backend) error { return b.Create(ctx, "x", []byte("x")) }, storage.ErrExists, false, "already exists"},
		{"412", &fake{status: 412, code: "ConditionNotMet"}, func(b *Backend) error { return b.Create(ctx, "x", []byte("x")) }, storage.ErrExists, false, "already exists"},
		{"403 delete", &fake{status: 403, code: "AuthorizationPermissionMismatch"}, func(b *Backend) error { return b.Delete(ctx, "x") }, storage.ErrPermission, false, `lacks delete ("d") permission (it grants "crl")`},
		{"network", &fake{err: errors.New("connection reset by peer")}, func(b *Backend) error { return b.List(ctx, "", func(storage.Info) error { return nil }) }, nil, false, "connection reset"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.op(fakeBackend(t, c.f, sasQuery))
			if err == nil {
				t.Fatal("succeeded")
			}
			if c.sentinel != nil && !errors.Is(err, c.sentinel) {
				t.Errorf("got %v, want %v", err, c.sentinel)
			}
			if got := retry.IsTransient(err); got != c.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, got, c.transient)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("message %q does not say %q", err, c.says)
			}
			if strings.Contains(err.Error(), "SECRETSIG") || strings.Contains(err.Error(), "\n") {
				t.Errorf("message %q shows the signature or spans lines", err)
			}
		})
	}
}

func TestExpiredSASIsNamed(t *testing.T) {
	q := strings.Replace(sasQuery, "2099", "2001", 1)
	b := fakeBackend(t, &fake{status: 403, code: "AuthenticationFailed"}, q)
	_, err := b.Stat(t.Context(), "x")
	if !errors.Is(err, storage.ErrPermission) || !strings.Contains(err.Error(), "expired at 2001-01-01") {
		t.Fatalf("got %v, want ErrPermission saying the SAS expired", err)
	}
}

// Without write permission an object larger than a block still goes in
// one request: staging blocks would be refused.
func TestCreateOnlySASSendsOneRequest(t *testing.T) {
	f := &fake{status: 201}
	b := fakeBackend(t, f, sasQuery)
	b.blockSize = 4
	if err := b.Create(t.Context(), "x", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if f.calls != 1 {
		t.Fatalf("sent %d requests, want 1", f.calls)
	}
}
