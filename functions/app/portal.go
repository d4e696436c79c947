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

// portalURL is the portal's address for alert emails' links. Under App
// Service Authentication the Functions host does not yet route /portal/ to
// the handler (docs/portal.md, "Not yet deployable"), so emails carry no
// link there until it does.
func portalURL(cfg config.Config) string {
	if cfg.AuthMode != "tokens" || cfg.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(cfg.PublicURL, "/") + "/portal/"
}
