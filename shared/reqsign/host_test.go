package reqsign

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// hostForward rebuilds a request the way the Functions host forwards it to
// a custom handler with enableForwardingHttpRequest (azure-functions-host,
// DefaultHttpWorkerService.ProcessHttpInAndOutInvocationRequest and
// HttpRequestExtensions.ToHttpRequestMessage):
//   - the path is Uri.AbsolutePath of the display URL, re-escaped;
//   - the query is ASP.NET's parsed collection (keys case-insensitive, in
//     first-seen order, repeated values joined by a comma by
//     StringValues.ToString), written again by QueryHelpers.AddQueryString,
//     which escapes with UrlEncoder.Default (a space is %20, never +);
//   - the body is copied only when Content-Length > 0.
func hostForward(t *testing.T, in *http.Request, body []byte) (*http.Request, []byte) {
	t.Helper()
	type kv struct {
		key  string
		vals []string
	}
	var order []*kv
	byKey := map[string]*kv{}
	for _, part := range strings.Split(in.URL.RawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			t.Fatalf("query part %q does not decode", part)
		}
		e := byKey[strings.ToLower(k)]
		if e == nil {
			e = &kv{key: k}
			byKey[strings.ToLower(k)] = e
			order = append(order, e)
		}
		e.vals = append(e.vals, v)
	}
	var q strings.Builder
	for i, e := range order {
		if i > 0 {
			q.WriteByte('&')
		}
		q.WriteString(dotnetEscape(e.key) + "=" + dotnetEscape(strings.Join(e.vals, ",")))
	}
	u := "http://127.0.0.1:7071" + (&url.URL{Path: in.URL.Path}).EscapedPath()
	if q.Len() > 0 {
		u += "?" + q.String()
	}
	out := httptest.NewRequest(in.Method, u, nil)
	out.Header = in.Header.Clone()
	if in.ContentLength <= 0 {
		body = nil
	}
	return out, body
}

// dotnetEscape escapes as UrlEncoder.Default does for a query component:
// only ASCII letters, digits and -._~ stay as they are.
func dotnetEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return b.String()
}

func TestSignatureSurvivesTheFunctionsHost(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	pub, priv, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, url string
		body              []byte
	}{
		// Keys out of order, a "+" for a space, reserved characters, a
		// comma and non-ASCII text: every one is spelt differently after
		// the host.
		{"query needing escapes", "GET", "http://cp/api/v1/agent/jobs?type=backup&status=in_progress&note=a+b%2Fc%3Fd&name=caf%C3%A9,%20x&limit=5", nil},
		{"empty value", "GET", "http://cp/api/v1/agent/jobs?type=back+up&status=", nil},
		{"body", "POST", "http://cp/api/v1/agent/jobs/j-1?x=%7E%21", []byte(`{"status":"completed"}`)},
		{"empty body", "POST", "http://cp/api/v1/agent/retire-key", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// As cpclient sends it: a bytes reader, so Content-Length is set
			// (0 for no body, which the host then does not forward).
			out, err := http.NewRequest(tc.method, tc.url, strings.NewReader(string(tc.body)))
			if err != nil {
				t.Fatal(err)
			}
			if err := Sign(out, tc.body, "m-1", priv, now); err != nil {
				t.Fatal(err)
			}
			in, body := hostForward(t, out, tc.body)
			s, err := Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Verify(in, body, pub, now); err != nil {
				t.Fatalf("%s as forwarded by the host (%s) does not verify: %v", tc.url, in.URL.RequestURI(), err)
			}
			// The raw bytes would not have matched: the canonical form is
			// what makes this work.
			if tc.name == "query needing escapes" && out.URL.RequestURI() == in.URL.RequestURI() {
				t.Fatal("request URIs are equal after the host; the test lost its point")
			}
		})
	}
}

func TestRepeatedQueryKeysAreRefused(t *testing.T) {
	_, priv, _ := NewKey()
	for _, raw := range []string{"a=1&a=2", "Type=backup&type=restore"} {
		req, _ := http.NewRequest("GET", "http://cp/api/v1/agent/jobs?"+raw, nil)
		if err := Sign(req, nil, "m-1", priv, time.Now()); err == nil {
			t.Errorf("signed %q, whose keys the host would merge", raw)
		}
		// A server that sees them (no host in between) refuses them too.
		in := httptest.NewRequest("GET", "/api/v1/agent/jobs?"+raw, nil)
		in.Header.Set(HeaderMachine, "m-1")
		in.Header.Set(HeaderTimestamp, "1700000000")
		in.Header.Set(HeaderNonce, "00112233445566778899aabbccddeeff")
		in.Header.Set(HeaderSignature, strings.Repeat("A", 86)+"==")
		s, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := NewKey()
		if err := s.Verify(in, nil, pub, time.Unix(1700000000, 0)); !errors.Is(err, ErrMalformed) {
			t.Errorf("verify %q: %v, want ErrMalformed", raw, err)
		}
	}
}

func TestCanonicalForm(t *testing.T) {
	for raw, want := range map[string]string{
		"/api/v1/agent/policy":               "/api/v1/agent/policy",
		"/api/v1/agent/jobs?b=2&a=1":         "/api/v1/agent/jobs?a=1&b=2",
		"/api/v1/agent/jobs?a=x%20y":         "/api/v1/agent/jobs?a=x+y",
		"/api/v1/agent/jobs?a=x+y":           "/api/v1/agent/jobs?a=x+y",
		"/api/v1/agent/jobs/j%2D1?flag":      "/api/v1/agent/jobs/j-1?flag=",
		"/api/v1/agent/jobs?note=caf%C3%A9,": "/api/v1/agent/jobs?note=caf%C3%A9%2C",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Canonical(u)
		if err != nil || got != want {
			t.Errorf("Canonical(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
}
