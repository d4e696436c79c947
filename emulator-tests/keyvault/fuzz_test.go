package keyvault

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fuzzVault is a fresh vault per input, holding one secret of each state so
// arbitrary requests reach the interesting paths: two versions, a disabled
// secret and a soft-deleted one.
func fuzzVault(t *testing.T) *vault {
	t.Helper()
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	v, err := newVault(Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ method, path, body string }{
		{"PUT", "/secrets/exists", `{"value":"one"}`},
		{"PUT", "/secrets/exists", `{"value":"two","tags":{"k":"v"}}`},
		{"PUT", "/secrets/disabled", `{"value":"x","attributes":{"enabled":false}}`},
		{"PUT", "/secrets/gone", `{"value":"x"}`},
		{"DELETE", "/secrets/gone", ``},
	} {
		rec := serve(v, step.method, "/"+strings.TrimPrefix(step.path, "/")+"?api-version=7.4", []byte(step.body))
		if rec == nil || rec.Code != http.StatusOK {
			t.Fatalf("seed %s %s failed", step.method, step.path)
		}
	}
	return v
}

// serve drives the handler in-process; nil means the input is not a request
// net/http could carry at all.
func serve(v *vault, method, target string, body []byte) *httptest.ResponseRecorder {
	req, err := http.NewRequest(method, "https://127.0.0.1:8443"+target, bytes.NewReader(body))
	if err != nil {
		return nil
	}
	req.Header.Set("Authorization", "Bearer fuzz")
	rec := httptest.NewRecorder()
	v.ServeHTTP(rec, req)
	return rec
}

// FuzzRequest feeds arbitrary methods, paths and bodies (set-secret bodies
// above all) to the handler: it must never panic or answer 5xx, every
// response body must be JSON, and a secret it accepted must read back.
func FuzzRequest(f *testing.F) {
	const q = "?api-version=7.4"
	for _, seed := range []struct{ method, target, body string }{
		{"PUT", "/secrets/new" + q, `{"value":"v","contentType":"text/plain","tags":{"a":"b"},"attributes":{"enabled":true,"nbf":1,"exp":2}}`},
		{"PUT", "/secrets/new" + q, `{"value":"v","attributes":{"exp":1e99}}`},
		{"PUT", "/secrets/new" + q, `{"value":null,"tags":{"a":null}}`},
		{"PUT", "/secrets/gone" + q, `{"value":"v"}`},
		{"PUT", "/secrets/bad_name" + q, `{"value":"v"}`},
		{"PUT", "/secrets/new" + q, "{\"value\":\"\xff\xfe\"}"},
		{"PUT", "/secrets/new" + q, `[{"value":"v"}]`},
		{"PATCH", "/secrets/exists/" + q, `{"attributes":{"enabled":false},"tags":{}}`},
		{"PATCH", "/secrets/exists/00000000000000000000000000000000" + q, `{}`},
		{"GET", "/secrets/disabled" + q, ``},
		{"GET", "/secrets" + q + "&maxresults=1&$skiptoken=ZXhpc3Rz", ``},
		{"GET", "/secrets/exists/versions" + q + "&maxresults=1", ``},
		{"GET", "/secrets/a%2Fb/" + q, ``},
		{"GET", "/deletedsecrets" + q, ``},
		{"POST", "/deletedsecrets/gone/recover" + q, ``},
		{"DELETE", "/deletedsecrets/gone" + q, ``},
		{"DELETE", "/secrets/gone" + q, ``},
		{"GET", "/secrets/exists", ``},
		{"POST", "/secrets/exists/backup" + q, ``},
		{"POST", "/secrets/restore" + q, `{"value":"eyJmb3JtYXQiOiJjb2ZmZXIta2V5dmF1bHQtZW11bGF0b3ItYmFja3VwLzEiLCJuYW1lIjoibmV3IiwidmVyc2lvbnMiOlt7ImlkIjoiMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAiLCJ2YWx1ZSI6InYiLCJlbmFibGVkIjp0cnVlLCJjcmVhdGVkIjoxLCJ1cGRhdGVkIjoxfV19"}`},
		{"POST", "/secrets/restore" + q, `{"value":"!!"}`},
	} {
		f.Add(seed.method, seed.target, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		v := fuzzVault(t)
		rec := serve(v, method, target, body)
		if rec == nil {
			return
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %q answered %d: %s", method, target, rec.Code, rec.Body.Bytes())
		}
		if rec.Code == http.StatusNoContent {
			return
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q answered %d with non-JSON %q", method, target, rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 400 {
			var doc apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || doc.Error.Code == "" || doc.Error.Message == "" {
				t.Fatalf("error answer %q is not Key Vault's shape", rec.Body.Bytes())
			}
			return
		}
		if method != http.MethodPut {
			return
		}
		// An accepted set must be readable at the ID it returned, with the same value.
		var set struct {
			ID         string  `json:"id"`
			Value      *string `json:"value"`
			Attributes struct {
				Enabled bool `json:"enabled"`
			} `json:"attributes"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || set.Value == nil {
			t.Fatalf("set answered %q", rec.Body.Bytes())
		}
		id, err := url.Parse(set.ID)
		if err != nil {
			t.Fatalf("set returned unparsable id %q: %v", set.ID, err)
		}
		got := serve(v, http.MethodGet, id.EscapedPath()+"?api-version=7.4", nil)
		var read struct {
			Value *string `json:"value"`
		}
		if got == nil || json.Unmarshal(got.Body.Bytes(), &read) != nil {
			t.Fatalf("reading back %s failed", set.ID)
		}
		if got.Code == http.StatusForbidden && !set.Attributes.Enabled {
			return // set disabled: reading it is refused, as in Key Vault
		}
		if got.Code != http.StatusOK || read.Value == nil || *read.Value != *set.Value {
			t.Fatalf("read back %s: %d %q, want value %q", set.ID, got.Code, got.Body.Bytes(), *set.Value)
		}
	})
}
