// Package mailer is the logic of the SendAlertEmail function: it turns alert
// messages from the alerts queue into email to the vault's recipients, one
// email per alert or an hourly digest, over an SMTP relay. A machine's
// alerts beyond BurstLimit an hour go to the digest too, so a burst becomes
// one email (burst.go), and text a machine reported is shown as quoted,
// defanged data (untrusted.go).
//
// Errors decide what happens to the Service Bus message: ErrPoison means the
// body can never be handled (dead-letter it now); any other error is
// transient (abandon it, so Service Bus redelivers it and dead-letters it
// after MaxDeliveryCount).
package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/functions/tables"
)

// ErrPoison marks an alert message that can never be handled.
var ErrPoison = errors.New("poison alert message")

// Connection security.
const (
	SecurityStartTLS = "starttls" // the default: plain connect, then STARTTLS, required
	SecurityTLS      = "tls"      // implicit TLS from the first byte (port 465)
	SecurityNone     = "none"     // clear text, only to a relay on this machine
)

// Config is the SMTP relay and the sender address.
type Config struct {
	Host     string
	Port     int    // 0 means 587 for starttls, 465 for tls, 25 for none
	Security string // SecurityStartTLS (default), SecurityTLS or SecurityNone
	// Username and Password, when set, are sent with AUTH PLAIN, only ever
	// over TLS unless the relay is on loopback.
	Username, Password string
	From               string // e.g. "Coffer <alerts@contoso.example>"
	// TLSConfig is used for STARTTLS and implicit TLS; nil trusts the system
	// roots. ServerName defaults to Host.
	TLSConfig *tls.Config
	// SoftDeleteDays is how long deleted data stays undeletable
	// (COFFER_SOFT_DELETE_DAYS), as the advice tells it; 0 means 14.
	SoftDeleteDays int
	// PortalURL is the vault portal's address (COFFER_PUBLIC_URL + /portal/):
	// emails link to the alert's job, machine or vault page there. Empty
	// leaves the links out.
	PortalURL string
}

func (m *Mailer) softDeleteDays() int {
	if m.cfg.SoftDeleteDays > 0 {
		return m.cfg.SoftDeleteDays
	}
	return 14
}

// Recipients says where a vault's alerts go; the vault registry implements it.
type Recipients interface {
	AlertRecipients(ctx context.Context, vaultID string) (to []string, digest bool, err error)
}

// Mailer sends alert email.
type Mailer struct {
	cfg     Config
	addr    string // host:port
	tls     *tls.Config
	from    *mail.Address
	domain  string // for Message-IDs
	rcpt    Recipients
	digests *aztables.Client
	now     func() time.Time
	log     *slog.Logger
}

// New checks the configuration and returns a Mailer. digests is the table
// that holds alerts waiting for the hourly digest; now is the clock used for
// Date headers (nil means time.Now).
func New(cfg Config, rcpt Recipients, digests *aztables.Client, now func() time.Time) (*Mailer, error) {
	cfg.Host = strings.TrimSpace(cfg.Host)
	if cfg.Host == "" || len(cfg.Host) > 253 || strings.ContainsFunc(cfg.Host, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("SMTP host %q is not a host name or IP address: set it to your mail relay, e.g. smtp.office365.com", cfg.Host)
	}
	cfg.Security = strings.ToLower(strings.TrimSpace(cfg.Security))
	defaultPort := 0
	switch cfg.Security {
	case "", SecurityStartTLS:
		cfg.Security, defaultPort = SecurityStartTLS, 587
	case SecurityTLS:
		defaultPort = 465
	case SecurityNone:
		defaultPort = 25
		if !isLoopback(cfg.Host) {
			return nil, fmt.Errorf("SMTP security %q would send mail and passwords in clear text to %s; it is allowed only for a relay on this machine (localhost, 127.0.0.1, ::1): use %q or %q", cfg.Security, cfg.Host, SecurityStartTLS, SecurityTLS)
		}
	default:
		return nil, fmt.Errorf("SMTP security %q is unknown: use %q (the default), %q (implicit TLS, usually port 465) or %q (loopback only)", cfg.Security, SecurityStartTLS, SecurityTLS, SecurityNone)
	}
	if cfg.Port == 0 {
		cfg.Port = defaultPort
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("SMTP port %d is out of range: use 587 for STARTTLS or 465 for TLS", cfg.Port)
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("SMTP username and password go together: set both, or neither for a relay that needs no login")
	}
	if strings.ContainsAny(cfg.Username+cfg.Password, "\x00\r\n") {
		return nil, errors.New("SMTP username and password must not contain NUL or line breaks")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("sender address %q is not an email address (%v): set it to e.g. \"Coffer <alerts@contoso.example>\"", cfg.From, err)
	}
	if rcpt == nil {
		return nil, errors.New("mailer needs the vault registry to look up alert recipients")
	}
	if digests == nil {
		return nil, errors.New("mailer needs the digests table for vaults that want an hourly digest")
	}
	if now == nil {
		now = time.Now
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tc = cfg.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = cfg.Host
	}
	domain := "coffer.invalid"
	if at := strings.LastIndexByte(from.Address, '@'); at >= 0 && validDomain(from.Address[at+1:]) {
		domain = from.Address[at+1:]
	}
	return &Mailer{
		cfg: cfg, addr: net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), tls: tc, from: from, domain: domain,
		rcpt: rcpt, digests: digests, now: now,
		log: slog.Default().With("component", "mailer"),
	}, nil
}

// EnsureTable creates the digests table if it does not exist.
func (m *Mailer) EnsureTable(ctx context.Context) error {
	if _, err := m.digests.CreateTable(ctx, nil); err != nil && !tables.Status(err, 409) {
		return fmt.Errorf("create the digests table (check the storage connection string and role): %w", err)
	}
	return nil
}

// HandleAlert handles one message from the alerts queue. A vault without
// recipients needs nothing; a vault on digests gets the alert stored for
// SendDigests (storing it again on redelivery changes nothing); any other
// vault gets one email now.
func (m *Mailer) HandleAlert(ctx context.Context, body []byte) error {
	a, err := alerts.DecodeMessage(body)
	if err != nil {
		return fmt.Errorf("%w (dead-letter it; it can never be sent): %w", ErrPoison, err)
	}
	log := m.log.With("vault", a.VaultID, "alert", a.ID)
	to, digest, err := m.rcpt.AlertRecipients(ctx, a.VaultID)
	if err != nil {
		return fmt.Errorf("look up the alert recipients of vault %s (the message will be retried): %w", a.VaultID, err)
	}
	to = m.addresses(to, log)
	if len(to) == 0 {
		log.Info("vault has no alert recipients; no email sent")
		return nil
	}
	if digest {
		if err := m.queueDigest(ctx, a); err != nil {
			return fmt.Errorf("keep alert %s for vault %s's digest (the message will be retried): %w", a.ID, a.VaultID, err)
		}
		log.Info("alert kept for the hourly digest")
		return nil
	}
	now, err := m.takeEmail(ctx, a)
	if err != nil {
		// The limit guards against floods; an alert must not wait on it.
		log.Error("alert email count unavailable; sending the email anyway", "machine", a.MachineID, "err", err)
		now = true
	}
	if !now {
		if err := m.queueDigest(ctx, a); err != nil {
			return fmt.Errorf("keep alert %s for vault %s's digest (the message will be retried): %w", a.ID, a.VaultID, err)
		}
		log.Info("machine is over its alert email limit; alert kept for the hourly digest", "machine", a.MachineID, "limit", BurstLimit, "window", BurstWindow)
		return nil
	}
	msg := m.alertEmail(a, to)
	if err := m.send(ctx, to, msg); err != nil {
		return fmt.Errorf("email alert %s of vault %s via %s (the message will be retried): %w", a.ID, a.VaultID, m.addr, err)
	}
	log.Info("alert emailed", "recipients", len(to))
	return nil
}

// addresses keeps the recipients that are valid email addresses, bare.
func (m *Mailer) addresses(in []string, log *slog.Logger) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		a, err := mail.ParseAddress(s)
		if err != nil || strings.ContainsAny(a.Address, "\r\n") {
			log.Warn("skipping an alert recipient that is not an email address; fix the vault's recipients", "recipient", s)
			continue
		}
		if k := strings.ToLower(a.Address); !seen[k] {
			seen[k] = true
			out = append(out, a.Address)
		}
	}
	return out
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func validDomain(d string) bool {
	return d != "" && len(d) <= 253 && !strings.ContainsFunc(d, func(r rune) bool {
		return !(r == '.' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
}

// SetLogger sends the mailer logs to l.
func (m *Mailer) SetLogger(l *slog.Logger) { m.log = l.With("component", "mailer") }
