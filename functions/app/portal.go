package app

import (
	"log/slog"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/functions/api"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/functions/portal"
)

// newPortal builds the vault portal for these settings: local sign-in with
// the role tokens, or App Service Authentication's principal in Azure.
// Its cookies are Secure whenever browsers reach the control plane over
// HTTPS, which is always so in Azure.
func newPortal(cfg config.Config, auth api.Authenticator, now func() time.Time, log *slog.Logger) *portal.Portal {
	o := portal.Options{PublicURL: cfg.PublicURL, Now: now, Log: log,
		Secure: cfg.AuthMode != "tokens" || strings.HasPrefix(cfg.PublicURL, "https://")}
	if t, ok := auth.(api.Tokens); ok {
		o.Tokens = t
	}
	return portal.New(o)
}

// portalURL is the portal's address for alert emails' links: /portal/
// locally, /api/portal/ under App Service Authentication, where the
// Functions host forwards only paths under /api/ to the handler.
func portalURL(cfg config.Config) string {
	if cfg.PublicURL == "" {
		return ""
	}
	mount := portal.HostPath
	if cfg.AuthMode == "tokens" {
		mount = portal.Path
	}
	return strings.TrimRight(cfg.PublicURL, "/") + mount + "/"
}
