package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Network bounds for one delivery. Each is well inside the Service Bus lock
// duration, so a hung relay fails the attempt before the lock runs out.
const (
	dialTimeout    = 30 * time.Second
	commandTimeout = time.Minute
	dataTimeout    = 2 * time.Minute
)

// send delivers msg to every address in to in one SMTP transaction. A
// recipient the relay refuses for good (5xx) is skipped and logged so the
// others still get the alert; anything else fails the whole send.
func (m *Mailer) send(ctx context.Context, to []string, msg []byte) (err error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return fmt.Errorf("connect to the SMTP relay: %w", err)
	}
	// go-smtp has no context; closing the connection unblocks it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		if !stop() && err != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
	}()

	var c *smtp.Client
	switch m.cfg.Security {
	case SecurityTLS:
		tc := tls.Client(conn, m.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("TLS handshake with %s (check the port is for implicit TLS and that the certificate is trusted): %w", m.addr, err)
		}
		c = smtp.NewClient(tc)
	case SecurityStartTLS:
		// NewClientStartTLS fails if the relay does not offer STARTTLS:
		// never fall back to clear text.
		if c, err = smtp.NewClientStartTLS(conn, m.tls); err != nil {
			conn.Close()
			return fmt.Errorf("STARTTLS with %s (the relay must offer it; use security \"tls\" for port 465): %w", m.addr, err)
		}
		// The handshake runs on the first command after STARTTLS; run it
		// here so a certificate problem is reported as one.
		if err := c.Hello("localhost"); err != nil {
			c.Close()
			return fmt.Errorf("TLS after STARTTLS with %s (check that the relay's certificate is trusted): %w", m.addr, err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = commandTimeout, dataTimeout

	if m.cfg.Username != "" {
		if _, encrypted := c.TLSConnectionState(); !encrypted && !isLoopback(m.cfg.Host) {
			return fmt.Errorf("refusing to send the SMTP password to %s over an unencrypted connection", m.addr)
		}
		if err := c.Auth(sasl.NewPlainClient("", m.cfg.Username, m.cfg.Password)); err != nil {
			return fmt.Errorf("log in to %s as %s (check the SMTP username and password): %w", m.addr, m.cfg.Username, err)
		}
	}
	if err := c.Mail(m.from.Address, nil); err != nil {
		return fmt.Errorf("MAIL FROM %s: %w", m.from.Address, err)
	}
	accepted := 0
	for _, r := range to {
		err := c.Rcpt(r, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			accepted++
		case errors.As(err, &se) && se.Code >= 500:
			m.log.Warn("the SMTP relay refused an alert recipient; fix the vault's recipients", "recipient", r, "err", err)
		default:
			return fmt.Errorf("RCPT TO %s: %w", r, err)
		}
	}
	if accepted == 0 {
		return errors.New("the SMTP relay refused every recipient")
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("write the message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("the SMTP relay did not accept the message: %w", err)
	}
	// The relay has the message; a failed QUIT must not cause a resend.
	_ = c.Quit()
	return nil
}
