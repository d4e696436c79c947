package smtpsink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/devcert"
)

const msg = "From: coffer@example.com\r\nTo: admin@example.com\r\nSubject: =?utf-8?q?Backup_failed_=E2=80=94_srv01?=\r\n\r\nThe backup of srv01 failed.\r\n"

func start(t *testing.T, o Options) *Sink {
	t.Helper()
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestPlainMailIsCapturedAndDecoded(t *testing.T) {
	dir := t.TempDir()
	fixed := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	s := start(t, Options{Dir: dir, Now: func() time.Time { return fixed }})
	if err := smtp.SendMail(s.Addr(), nil, "coffer@example.com", []string{"admin@example.com", "ops@example.com"}, []byte(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := s.Messages()
	if len(got) != 1 {
		t.Fatalf("captured %d messages, want 1", len(got))
	}
	m := got[0]
	if m.From != "coffer@example.com" || strings.Join(m.To, ",") != "admin@example.com,ops@example.com" {
		t.Errorf("envelope = %s -> %v", m.From, m.To)
	}
	if m.Subject != "Backup failed — srv01" {
		t.Errorf("subject = %q, want the decoded subject", m.Subject)
	}
	if m.Body != "The backup of srv01 failed.\n" {
		t.Errorf("body = %q", m.Body)
	}
	if m.TLS || m.AuthUser != "" || !m.Received.Equal(fixed) {
		t.Errorf("TLS=%v auth=%q received=%v", m.TLS, m.AuthUser, m.Received)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "0001.eml"))
	if err != nil {
		t.Fatalf("saved file: %v", err)
	}
	if !strings.Contains(string(raw), "The backup of srv01 failed.") {
		t.Errorf("saved file holds %q", raw)
	}
}

func TestStartTLSWithAuthentication(t *testing.T) {
	cert, err := devcert.New("smtp", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, Options{TLS: cert.ServerTLS(), Username: "mailer", Password: "s3cret"})

	send := func(user, pass string) error {
		c, err := smtp.Dial(s.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		cfg := cert.ClientTLS()
		cfg.ServerName = "127.0.0.1"
		if err := c.StartTLS(cfg); err != nil {
			return err
		}
		if user != "" {
			if err := c.Auth(smtp.PlainAuth("", user, pass, "127.0.0.1")); err != nil {
				return err
			}
		}
		if err := c.Mail("coffer@example.com"); err != nil {
			return err
		}
		if err := c.Rcpt("admin@example.com"); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		io.WriteString(w, msg)
		if err := w.Close(); err != nil {
			return err
		}
		return c.Quit()
	}
	if err := send("mailer", "wrong"); err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("wrong password: got %v, want 535", err)
	}
	if err := send("", ""); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("no authentication: got %v, want 502 please authenticate", err)
	}
	if err := send("mailer", "s3cret"); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := s.Messages()
	if len(got) != 1 || !got[0].TLS || got[0].AuthUser != "mailer" {
		t.Fatalf("captured %+v, want one message over TLS from mailer", got)
	}
}

func TestImplicitTLS(t *testing.T) {
	cert, err := devcert.New("smtp", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, Options{TLS: cert.ServerTLS(), ImplicitTLS: true})
	conn, err := tls.Dial("tcp", s.Addr(), cert.ClientTLS())
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	c, err := smtp.NewClient(conn, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.com"); err != nil {
		t.Fatal(err)
	}
	c.Rcpt("b@example.com")
	w, _ := c.Data()
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.Messages(); len(got) != 1 || !got[0].TLS {
		t.Fatalf("captured %+v, want one message over TLS", got)
	}
}

func TestWaitReturnsWhenMailArrives(t *testing.T) {
	s := start(t, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := s.Wait(ctx, 2); done <- err }()
	for range 2 {
		if err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	short, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if _, err := s.Wait(short, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait for a third message after cancel: %v", err)
	}
}

func TestWebPageAndJSONShowCapturedMail(t *testing.T) {
	s := start(t, Options{})
	if err := smtp.SendMail(s.Addr(), nil, "coffer@example.com", []string{"admin@example.com"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, "Backup failed — srv01") || !strings.Contains(body, "The backup of srv01 failed.") {
		t.Errorf("page: %d %s", code, body)
	}
	if code, body := get("/messages/0.eml"); code != 200 || !strings.HasPrefix(body, "From: coffer@example.com") {
		t.Errorf("raw: %d %q", code, body)
	}
	if code, _ := get("/messages/7.eml"); code != 404 {
		t.Errorf("missing message: %d, want 404", code)
	}
	code, body := get("/api/messages")
	var list []jsonMessage
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || list[0].Subject != "Backup failed — srv01" {
		t.Errorf("json: %d %s", code, body)
	}
}

func TestRejectFirstRefusesThenAccepts(t *testing.T) {
	s := start(t, Options{RejectFirst: 2})
	for i := range 2 {
		err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com"}, []byte(msg))
		if err == nil || !strings.Contains(err.Error(), "451") {
			t.Fatalf("message %d: got %v, want a temporary 451", i+1, err)
		}
	}
	if err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com"}, []byte(msg)); err != nil {
		t.Fatalf("third message: %v", err)
	}
	if got := s.Messages(); len(got) != 1 || s.Rejected() != 2 {
		t.Fatalf("captured %d, rejected %d; want 1 and 2", len(got), s.Rejected())
	}
}
