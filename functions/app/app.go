// Package app wires the control plane together from its settings: the
// Azure clients (connection strings for the emulators, the managed
// identity in Azure), the stores, the HTTP API, the timer and Service Bus
// functions, and, standalone, the scheduler and queue receiver that stand
// in for the Functions host.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/functions/api"
	"github.com/coffer-backup/coffer/functions/approvals"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/functions/invocation"
	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/mailer"
	"github.com/coffer-backup/coffer/functions/maintenance"
	"github.com/coffer-backup/coffer/functions/nonce"
	"github.com/coffer-backup/coffer/functions/pin"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/functions/sas"
	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/functions/triggers"
	"github.com/coffer-backup/coffer/functions/usage"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Clock is the control plane's time: the injected base plus an offset that
// only the local dev clock route moves.
type Clock struct {
	base   func() time.Time
	offset atomic.Int64
}

// NewClock wraps base (time.Now in production).
func NewClock(base func() time.Time) *Clock { return &Clock{base: base} }

// Now is the current time.
func (c *Clock) Now() time.Time { return c.base().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// App is a wired control plane.
type App struct {
	Config   config.Config
	Clock    *Clock
	Log      *slog.Logger
	Registry *registry.Registry
	Points   *points.Store
	Jobs     *jobs.Store
	Alerts   *alerts.Store
	Mailer   *mailer.Mailer
	Timers   *maintenance.Timers

	sb      *azservicebus.Client
	sender  *azservicebus.Sender
	handler *echo.Echo
	timers  []triggers.Timer

	ensure  []func(context.Context) error // create the tables (standalone only)
	tables  *aztables.ServiceClient
	storage *storageState
}

// New builds every client and store without reaching any of them: the
// Functions host gives a custom handler 30 s to listen, and storage may be
// slow or refusing while role assignments propagate. EnsureTables
// (standalone) and WatchStorage follow once the handler listens.
// underHost adds the routes the Functions host posts invocations to; they
// are left out standalone, where nothing should be able to start a purge
// with an HTTP request.
func New(cfg config.Config, clock *Clock, log *slog.Logger, underHost bool) (*App, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &App{Config: cfg, Clock: clock, Log: log}
	now := clock.Now

	var cred azcore.TokenCredential
	if cfg.StorageConnection == "" || cfg.ServiceBusConnection == "" {
		var err error
		if cfg.ClientID != "" {
			cred, err = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(cfg.ClientID)})
		} else {
			cred, err = azidentity.NewDefaultAzureCredential(nil)
		}
		if err != nil {
			return nil, fmt.Errorf("managed identity: %w", err)
		}
	}

	var (
		tsvc   *aztables.ServiceClient
		bsvc   *service.Client
		issuer *sas.Issuer
		err    error
	)
	if cfg.StorageConnection != "" {
		if tsvc, err = aztables.NewServiceClientFromConnectionString(cfg.StorageConnection, nil); err != nil {
			return nil, fmt.Errorf("table storage: %w", err)
		}
		if bsvc, err = service.NewClientFromConnectionString(cfg.StorageConnection, nil); err != nil {
			return nil, fmt.Errorf("blob storage: %w", err)
		}
		if issuer, err = sas.NewSharedKey(cfg.BlobEndpoint, cfg.StorageAccount, cfg.StorageKey, now); err != nil {
			return nil, fmt.Errorf("SAS signing: %w", err)
		}
	} else {
		if tsvc, err = aztables.NewServiceClient(cfg.TableEndpoint, cred, nil); err != nil {
			return nil, fmt.Errorf("table storage: %w", err)
		}
		if bsvc, err = service.NewClient(cfg.BlobEndpoint, cred, nil); err != nil {
			return nil, fmt.Errorf("blob storage: %w", err)
		}
		issuer = sas.NewUserDelegation(bsvc, cfg.BlobEndpoint, now)
	}
	if cfg.ServiceBusConnection != "" {
		a.sb, err = azservicebus.NewClientFromConnectionString(cfg.ServiceBusConnection, nil)
	} else {
		a.sb, err = azservicebus.NewClient(cfg.ServiceBusNamespace, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("service bus: %w", err)
	}
	if a.sender, err = a.sb.NewSender(cfg.AlertsQueue, nil); err != nil {
		return nil, fmt.Errorf("service bus sender for %s: %w", cfg.AlertsQueue, err)
	}

	a.Registry = registry.New(tsvc, now)
	a.Registry.SoftDelete = cfg.SoftDelete
	a.Points = points.New(tsvc, now)
	a.Points.SoftDeleteFor = cfg.SoftDelete
	pins := pin.New(tsvc, now)
	nonces := nonce.New(tsvc)
	apprs := approvals.New(tsvc, now, cfg.ApprovalTTL)
	usageHist := usage.New(tsvc)
	a.Jobs = jobs.New(tsvc.NewClient("jobs"), now)
	a.Alerts = alerts.New(tsvc.NewClient("alerts"), a.sender, now)
	blobs := containers.New(bsvc, now)
	blobs.SetLogger(log)
	blobs.SoftDeleteFor = cfg.SoftDelete
	a.Jobs.SetLogger(log)
	a.Jobs.OnLateOutcome = a.lateOutcome
	a.Alerts.SetLogger(log)

	// Tables are created by EnsureTables (standalone) or by the Bicep (under
	// the Functions host); New itself makes no network call, so the handler
	// can listen at once (see storage.go).
	digests := tsvc.NewClient("digests")
	a.ensure = []func(context.Context) error{a.Registry.EnsureTables, a.Points.EnsureTable, pins.EnsureTable, nonces.EnsureTable, a.Jobs.EnsureTable, a.Alerts.EnsureTable, apprs.EnsureTable, usageHist.EnsureTable,
		func(ctx context.Context) error { return tables.Ensure(ctx, digests) }}
	a.tables = tsvc
	a.storage = newStorageState()

	mcfg := mailer.Config{Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, Security: cfg.SMTP.Security,
		Username: cfg.SMTP.Username, Password: cfg.SMTP.Password, From: cfg.SMTP.From,
		SoftDeleteDays: int(cfg.SoftDelete / (24 * time.Hour)), PortalURL: portalURL(cfg)}
	if cfg.SMTP.Host != "" {
		if a.Mailer, err = mailer.New(mcfg, a.Registry, digests, now); err != nil {
			return nil, fmt.Errorf("email: %w", err)
		}
		a.Mailer.SetLogger(log)
	} else {
		log.Warn("no SMTP host configured; alert emails will stay queued until COFFER_SMTP_HOST is set")
	}

	a.Timers = &maintenance.Timers{Registry: a.Registry, Points: a.Points, PINs: pins, Nonces: nonces, Jobs: a.Jobs,
		Alerts: a.Alerts, Blobs: blobs, Now: now, Log: log, StaleAfter: cfg.StaleJobAfter,
		MissedGrace: maintenance.DefaultMissedGrace, GCGrace: maintenance.DefaultGCGrace, OrphanAfter: maintenance.DefaultOrphanAfter,
		Usage: usageHist, Sizes: blobs, Approvals: apprs}

	var auth api.Authenticator = api.AppService{}
	if cfg.AuthMode == "tokens" {
		auth = api.Tokens{api.RoleContributor: cfg.Tokens.Contributor, api.RoleOperator: cfg.Tokens.Operator, api.RoleReader: cfg.Tokens.Reader,
			api.RoleSecurityAdmin: cfg.Tokens.SecurityAdmin}
	}
	prt := newPortal(cfg, auth, now, log)
	auth = prt.Authenticator(auth)
	grants, err := keyVaultGranter(cfg, cred)
	if err != nil {
		return nil, fmt.Errorf("Key Vault role assignments: %w", err)
	}
	var kvGrants api.KeyVaultGranter
	if grants != nil {
		kvGrants = grants
		a.Timers.KeyVault = grants // a purged machine's role goes with it
	}
	a.handler = api.New(api.Deps{Registry: a.Registry, Points: a.Points, PINs: pins, Nonces: nonces, Jobs: a.Jobs,
		Alerts: a.Alerts, SAS: issuer, Blobs: blobs, Auth: auth, Now: now, Log: log,
		PublicURL: cfg.PublicURL, KeyVaultURL: cfg.KeyVaultURL, BlobEndpoint: cfg.BlobEndpoint, TenantID: cfg.TenantID,
		SoftDelete: cfg.SoftDelete, Health: a.health, KeyVaultGrants: kvGrants, Approvals: apprs, Usage: usageHist})
	prt.Register(a.handler)

	a.timers, err = triggers.Timers(map[string]triggers.TimerFunc{
		triggers.FuncPurgeSoftDeleted: func(ctx context.Context, _ *invocation.Timer) error {
			_, err := a.Timers.PurgeSoftDeleted(ctx)
			return err
		},
		triggers.FuncEnforceRetention: func(ctx context.Context, _ *invocation.Timer) error {
			_, err := a.Timers.EnforceRetention(ctx)
			return err
		},
		triggers.FuncMonitorBackups: func(ctx context.Context, _ *invocation.Timer) error {
			_, err := a.Timers.MonitorBackups(ctx)
			return err
		},
		triggers.FuncSendAlertDigest: func(ctx context.Context, _ *invocation.Timer) error { return a.sendDigests(ctx) },
	})
	if err != nil {
		return nil, err
	}
	if underHost {
		triggers.Register(a.handler, a.timers, map[string]triggers.MessageFunc{triggers.FuncSendAlertEmail: a.handleAlert})
	}
	if cfg.DevClock {
		a.devClockRoutes()
	}
	return a, nil
}

// Handler serves the API and the Functions host's invocations.
func (a *App) Handler() http.Handler { return a.handler }

// handleAlert is the SendAlertEmail function.
func (a *App) handleAlert(ctx context.Context, body []byte) error {
	if a.Mailer == nil {
		return errors.New("no SMTP host configured (COFFER_SMTP_HOST); the alert is retried until one is")
	}
	err := a.Mailer.HandleAlert(ctx, body)
	if errors.Is(err, mailer.ErrPoison) {
		return fmt.Errorf("%w: %w", triggers.ErrPoison, err)
	}
	return err
}

func (a *App) sendDigests(ctx context.Context) error {
	if a.Mailer == nil {
		return nil
	}
	_, err := a.Mailer.SendDigests(ctx)
	return err
}

// RunTriggers stands in for the Functions host: it runs the timers on their
// schedules and receives the alerts queue, until ctx ends.
func (a *App) RunTriggers(ctx context.Context) error {
	sched, err := triggers.NewScheduler(a.timers, time.Now, a.Log)
	if err != nil {
		return err
	}
	rcv := triggers.NewReceiver(a.sb, a.Config.AlertsQueue, a.handleAlert, a.Log)
	errc := make(chan error, 2)
	go func() { errc <- sched.Run(ctx) }()
	go func() { errc <- rcv.Run(ctx) }()
	return errors.Join(<-errc, <-errc)
}

// Close releases the Service Bus connection.
func (a *App) Close(ctx context.Context) error {
	var errs []error
	if a.sender != nil {
		errs = append(errs, a.sender.Close(ctx))
	}
	if a.sb != nil {
		errs = append(errs, a.sb.Close(ctx))
	}
	return errors.Join(errs...)
}

// devClockRoutes let local tests and the demo move the control plane's
// clock forward (to show a purge after the soft-delete period). Config refuses the setting
// outside the local token mode.
func (a *App) devClockRoutes() {
	a.Log.Warn("COFFER_DEV_CLOCK is on: a Backup Contributor can move this control plane's clock; never use it in production")
	auth := api.Tokens{api.RoleContributor: a.Config.Tokens.Contributor}
	a.handler.GET(wire.Version+"/dev/clock", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"now": a.Clock.Now().UTC().Format(time.RFC3339Nano)})
	})
	a.handler.POST(wire.Version+"/dev/clock", func(c echo.Context) error {
		if _, err := auth.Authenticate(c.Request()); err != nil {
			return c.JSON(http.StatusUnauthorized, wire.Error{Code: wire.CodeUnauthenticated, Message: "moving the clock needs the Backup Contributor token"})
		}
		var req struct {
			Advance string `json:"advance"`
		}
		if err := c.Bind(&req); err != nil {
			return c.JSON(http.StatusBadRequest, wire.Error{Code: wire.CodeBadRequest, Message: `send {"advance": "336h"}`})
		}
		d, err := time.ParseDuration(req.Advance)
		if err != nil || d < 0 {
			return c.JSON(http.StatusBadRequest, wire.Error{Code: wire.CodeBadRequest, Message: "advance must be a positive duration such as 336h"})
		}
		a.Clock.Advance(d)
		return c.JSON(http.StatusOK, map[string]string{"now": a.Clock.Now().UTC().Format(time.RFC3339Nano)})
	})
}
