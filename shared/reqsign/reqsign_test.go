package reqsign

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func signed(t *testing.T, method, url string, body []byte, at time.Time) (*http.Request, []byte) {
	t.Helper()
	pub, priv, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := http.NewRequest(method, url, nil)
	if err := Sign(out, body, "m-1", priv, at); err != nil {
		t.Fatal(err)
	}
	// What the server sees: a request parsed from the wire.
	in := httptest.NewRequest(method, url, nil)
	in.Header = out.Header.Clone()
	return in, pub
}

func TestSignedRequestVerifies(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	req, pub := signed(t, "POST", "http://cp/api/v1/agent/jobs?x=1", []byte(`{"type":"backup"}`), now)
	s, err := Parse(req)
	if err != nil {
		t.Fatal(err)
	}
	if s.Machine != "m-1" || !s.Time.Equal(now) {
		t.Fatalf("parsed %+v", s)
	}
	if err := s.Verify(req, []byte(`{"type":"backup"}`), pub, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
}

func TestTamperingIsDetected(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	body := []byte(`{"type":"backup"}`)
	cases := map[string]func(*http.Request) ([]byte, *http.Request){
		"body":    func(r *http.Request) ([]byte, *http.Request) { return []byte(`{"type":"restore"}`), r },
		"path":    func(r *http.Request) ([]byte, *http.Request) { r.URL.Path = "/api/v1/agent/sas"; return body, r },
		"method":  func(r *http.Request) ([]byte, *http.Request) { r.Method = "DELETE"; return body, r },
		"machine": func(r *http.Request) ([]byte, *http.Request) { r.Header.Set(HeaderMachine, "m-2"); return body, r },
		"nonce": func(r *http.Request) ([]byte, *http.Request) {
			r.Header.Set(HeaderNonce, "00000000000000000000000000000000")
			return body, r
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			req, pub := signed(t, "POST", "http://cp/api/v1/agent/jobs", body, now)
			b, req := tamper(req)
			s, err := Parse(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Verify(req, b, pub, now); !errors.Is(err, ErrBadSig) {
				t.Fatalf("tampered %s: %v, want ErrBadSig", name, err)
			}
		})
	}
}

func TestStaleAndFutureTimestampsAreRefused(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, skew := range []time.Duration{Window + time.Second, -Window - time.Second} {
		req, pub := signed(t, "GET", "http://cp/api/v1/agent/policy", nil, now)
		s, _ := Parse(req)
		if err := s.Verify(req, nil, pub, now.Add(skew)); !errors.Is(err, ErrStale) {
			t.Fatalf("skew %s: %v, want ErrStale", skew, err)
		}
	}
}

func TestParseRefusesMalformedHeaders(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	req := httptest.NewRequest("GET", "/x", nil)
	if _, err := Parse(req); !errors.Is(err, ErrMissing) {
		t.Fatalf("unsigned: %v", err)
	}
	for _, h := range []string{HeaderTimestamp, HeaderNonce, HeaderSignature, HeaderMachine} {
		r, _ := signed(t, "GET", "http://cp/x", nil, now)
		r.Header.Set(h, "not valid!")
		if h == HeaderMachine {
			r.Header.Set(h, "")
		}
		if _, err := Parse(r); !errors.Is(err, ErrMalformed) {
			t.Fatalf("bad %s: %v, want ErrMalformed", h, err)
		}
	}
}

func TestPublicKeyRoundTrip(t *testing.T) {
	pub, _, _ := NewKey()
	got, err := DecodePublicKey(EncodePublicKey(pub))
	if err != nil || !got.Equal(pub) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := DecodePublicKey("c2hvcnQ="); err == nil {
		t.Fatal("a short key was accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("m-1", "1700000000", "00112233445566778899aabbccddeeff", "AAAA")
	f.Fuzz(func(t *testing.T, m, ts, nonce, sig string) {
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set(HeaderMachine, m)
		r.Header.Set(HeaderTimestamp, ts)
		r.Header.Set(HeaderNonce, nonce)
		r.Header.Set(HeaderSignature, sig)
		if s, err := Parse(r); err == nil {
			pub, _, _ := NewKey()
			_ = s.Verify(r, nil, pub, time.Now())
		}
	})
}
