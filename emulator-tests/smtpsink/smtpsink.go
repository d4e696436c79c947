// Package smtpsink is an SMTP server that accepts every message and keeps
// it for inspection: tests assert on what was captured, and a person running
// the demo reads it as .eml files or on a small web page.
//
// It speaks plain SMTP, STARTTLS or implicit TLS, and optionally requires
// AUTH PLAIN with one username and password, so the control plane's
// mail settings can be exercised as they will be used against a real relay.
package smtpsink

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// MaxMessageBytes bounds one captured message.
const MaxMessageBytes = 10 << 20

// Options configure a sink.
type Options struct {
	Addr string // default 127.0.0.1:0
	// TLS enables STARTTLS, or implicit TLS when ImplicitTLS is set.
	TLS         *tls.Config
	ImplicitTLS bool
	// Username and Password, when set, make AUTH mandatory before MAIL.
	Username, Password string
	// Dir, when set, receives each message as NNNN.eml.
	Dir string
	Now func() time.Time
	// RejectFirst refuses the first N messages at the end of DATA with a
	// temporary 451, as a relay under load does, so tests can prove that a
	// sender retries instead of losing mail. Refused messages are not kept.
	RejectFirst int
}

// Message is one captured mail.
type Message struct {
	From     string
	To       []string
	Raw      []byte
	Header   mail.Header // nil if Raw does not parse as a message
	Subject  string
	Body     string
	TLS      bool   // the session was encrypted
	AuthUser string // who authenticated, if anyone
	Received time.Time
}

// Sink is a running SMTP sink.
type Sink struct {
	opts Options
	srv  *smtp.Server
	ln   net.Listener
	now  func() time.Time

	mu       sync.Mutex
	msgs     []Message
	rejected int
	changed  chan struct{} // closed and replaced on every new message
	served   chan struct{}
}

// Start listens and serves until Close.
func Start(opts Options) (*Sink, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.ImplicitTLS && opts.TLS == nil {
		return nil, errors.New("smtpsink: implicit TLS needs a TLS configuration")
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("create mail folder: %w", err)
		}
	}
	s := &Sink{opts: opts, now: opts.Now, changed: make(chan struct{}), served: make(chan struct{})}
	if s.now == nil {
		s.now = time.Now
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	srv.MaxMessageBytes = MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.TLSConfig = opts.TLS
	// Without TLS there is no way to authenticate otherwise; the sink only
	// ever listens on loopback.
	srv.AllowInsecureAuth = opts.TLS == nil
	srv.ErrorLog = discardLogger{}

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtpsink: listen on %s: %w", opts.Addr, err)
	}
	if opts.ImplicitTLS {
		ln = tls.NewListener(ln, opts.TLS)
	}
	s.srv, s.ln = srv, ln
	go func() {
		defer close(s.served)
		srv.Serve(ln)
	}()
	return s, nil
}

// Addr is host:port.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Host and Port split Addr.
func (s *Sink) Host() string { h, _, _ := net.SplitHostPort(s.Addr()); return h }

func (s *Sink) Port() string { _, p, _ := net.SplitHostPort(s.Addr()); return p }

// Messages returns a copy of what was captured so far, oldest first.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait returns once at least n messages were captured, or ctx ends.
func (s *Sink) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := append([]Message(nil), s.msgs...)
			s.mu.Unlock()
			return out, nil
		}
		ch := s.changed
		have := len(s.msgs)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waited for %d messages, got %d: %w", n, have, ctx.Err())
		}
	}
}

// Rejected is how many messages were refused because of RejectFirst.
func (s *Sink) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// reject reports whether this message is one of the first RejectFirst.
func (s *Sink) reject() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rejected < s.opts.RejectFirst {
		s.rejected++
		return true
	}
	return false
}

// Close stops the server and waits for it.
func (s *Sink) Close() error {
	err := s.srv.Close()
	// The server knows the listener only once Serve has started; closing it
	// here as well makes a Close right after Start return.
	s.ln.Close()
	<-s.served
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Sink) add(m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Dir != "" {
		name := filepath.Join(s.opts.Dir, fmt.Sprintf("%04d.eml", len(s.msgs)+1))
		if err := os.WriteFile(name, m.Raw, 0o644); err != nil {
			return fmt.Errorf("save message: %w", err)
		}
	}
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func (s *Sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{sink: s, conn: c}, nil
}

type session struct {
	sink *Sink
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (se *session) AuthMechanisms() []string {
	if se.sink.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != se.sink.opts.Username || pass != se.sink.opts.Password {
			return smtp.ErrAuthFailed
		}
		se.user = user
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.sink.opts.Username != "" && se.user == "" {
		return smtp.ErrAuthRequired
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if se.sink.reject() {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "smtpsink: refused on purpose (RejectFirst), try again later"}
	}
	_, isTLS := se.conn.TLSConnectionState()
	m := Message{From: se.from, To: append([]string(nil), se.to...), Raw: raw, TLS: isTLS, AuthUser: se.user, Received: se.sink.now()}
	if pm, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Header = pm.Header
		dec := new(mime.WordDecoder)
		if subj, err := dec.DecodeHeader(pm.Header.Get("Subject")); err == nil {
			m.Subject = subj
		}
		body, _ := io.ReadAll(pm.Body)
		m.Body = strings.ReplaceAll(string(body), "\r\n", "\n")
	}
	return se.sink.add(m)
}

func (se *session) Reset()        { se.from, se.to = "", nil }
func (se *session) Logout() error { return nil }

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
