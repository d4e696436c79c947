package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/config"
)

// TestCheckReadsTheTablesStandaloneCreates: the storage check under the
// host reads exactly the tables EnsureTables creates standalone (whose
// names infra's consistency test holds the Bicep to), and creates none.
func TestCheckReadsTheTablesStandaloneCreates(t *testing.T) {
	var (
		mu              sync.Mutex
		created, listed []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Tables"):
			var body struct{ TableName string }
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &body); err != nil {
				t.Errorf("create table body %q: %v", b, err)
			}
			created = append(created, body.TableName)
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodGet:
			name := strings.TrimSuffix(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:], "()")
			listed = append(listed, name)
			w.Header().Set("Content-Type", "application/json;odata=minimalmetadata")
			io.WriteString(w, `{"value":[]}`)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusNotImplemented)
		}
	}))
	defer srv.Close()
	env := map[string]string{
		config.StorageConnection: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
			"BlobEndpoint=" + srv.URL + "/devstoreaccount1;TableEndpoint=" + srv.URL + "/devstoreaccount1;",
		config.ServiceBusConnection: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
		config.KeyVaultURL:          "https://127.0.0.1:1/",
		config.PublicURL:            "http://127.0.0.1:1",
		config.TokenContributor:     "contributor-token-0123456789",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, NewClock(time.Now), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(t.Context())
	if err := a.CheckStorage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(created) != 0 {
		t.Fatalf("the check created %v", created)
	}
	if err := a.EnsureTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	slices.Sort(created)
	slices.Sort(listed)
	want := slices.Sorted(slices.Values(TableNames))
	if !slices.Equal(created, want) || !slices.Equal(listed, want) {
		t.Fatalf("EnsureTables creates %v and the check reads %v; TableNames is %v", created, listed, want)
	}
	if h := a.health()["storage"]; !h.OK {
		t.Fatalf("health after EnsureTables: %+v", h)
	}
}
