// Command coffer-functions is Coffer's control plane: an Azure Functions
// custom handler built on echo. The Functions host starts it and forwards
// HTTP requests and trigger invocations to FUNCTIONS_CUSTOMHANDLER_PORT.
// Standalone (local use, the emulator tests) it listens on --addr and runs
// the timers and the alerts queue itself.
//
// Under the host two rules shape start-up and logging, both from the host's
// source (Azure/azure-functions-host):
//   - The host waits HttpWorkerOptions.InitializationTimeout (30 s) for the
//     handler to accept connections, then gives up on it. So the handler
//     listens before it makes any network call, and storage is checked in
//     the background (app.WatchStorage), never created: the Bicep creates
//     the tables, and right after a deployment storage may refuse the app
//     (403) for minutes while its role assignments propagate.
//   - HttpWorkerDescription.UseStdErrorStreamForErrorsOnly is true: every
//     stderr line is logged as an Error, stdout as Information. So logs go
//     to stdout, and only records at Error level to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/functions/app"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, time.Now)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

// startBudget bounds the standalone start (creating the tables). The
// host's 30 s budget does not apply there, and under the host nothing
// before listening touches the network.
const startBudget = 45 * time.Second

// run is the whole program with its surroundings passed in, so a test can
// run it in process and read what it writes. It logs its own failure.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, now func() time.Time) error {
	log := newLogger(stdout, stderr)
	// Libraries and packages that log through slog.Default (and the log
	// package, which slog.SetDefault redirects) must not write to stderr
	// behind this handler's back.
	slog.SetDefault(log)
	err := serve(ctx, args, getenv, stdout, log, now)
	if err != nil {
		log.Error("coffer-functions stopped", "err", err.Error())
	}
	return err
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, log *slog.Logger, now func() time.Time) error {
	fs := flag.NewFlagSet("coffer-functions", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "", "listen address (default 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, or 127.0.0.1:0)")
	standalone := fs.Bool("standalone", getenv(config.Port) == "", "run the timers and receive the alerts queue here instead of the Functions host")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, getenv, err := listenOwnURL(*standalone, *addr, getenv)
	if err != nil {
		return err
	}
	if ln != nil {
		defer ln.Close() // for a return before Serve; a second Close is harmless
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("settings are incomplete (see docs/deploy.md):\n%w", err)
	}
	if *addr == "" {
		*addr = "127.0.0.1:0"
		if cfg.Port != "" {
			*addr = "127.0.0.1:" + cfg.Port
		}
	}

	// No network call happens in New: clients are built, not used.
	a, err := app.New(cfg, app.NewClock(now), log, !*standalone)
	if err != nil {
		return err
	}
	defer a.Close(context.Background())

	if ln == nil {
		if ln, err = net.Listen("tcp", *addr); err != nil {
			return fmt.Errorf("listen on %s: %w", *addr, err)
		}
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second,
		// net/http's own complaints (bad TLS handshakes, panics) would
		// otherwise go to stderr through the log package's default.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 3)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	defer func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()

	if *standalone {
		// Locally there is no Bicep: make the tables, and refuse to start
		// without them, before anyone is told the address.
		startCtx, cancel := context.WithTimeout(ctx, startBudget)
		err := a.EnsureTables(startCtx)
		cancel()
		if err != nil {
			return err
		}
	}
	go a.WatchStorage(ctx)

	// Tests and devstack read this line for the address.
	fmt.Fprintf(stdout, "coffer-functions listening on http://%s\n", ln.Addr())
	log.Info("coffer-functions listening", "addr", ln.Addr().String(), "version", version.String(), "standalone", *standalone)

	if *standalone {
		go func() {
			if err := a.RunTriggers(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("triggers: %w", err)
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// newLogger writes JSON records below Error to stdout and the rest to
// stderr, as the Functions host expects (see the package comment).
func newLogger(stdout, stderr io.Writer) *slog.Logger {
	return slog.New(splitHandler{
		out: slog.NewJSONHandler(stdout, nil),
		err: slog.NewJSONHandler(stderr, nil),
	})
}

type splitHandler struct{ out, err slog.Handler }

func (h splitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.out.Enabled(ctx, l) || h.err.Enabled(ctx, l)
}

func (h splitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		return h.err.Handle(ctx, r)
	}
	return h.out.Handle(ctx, r)
}

func (h splitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return splitHandler{out: h.out.WithAttrs(as), err: h.err.WithAttrs(as)}
}

func (h splitHandler) WithGroup(name string) slog.Handler {
	return splitHandler{out: h.out.WithGroup(name), err: h.err.WithGroup(name)}
}

// listenOwnURL is for a standalone start without COFFER_PUBLIC_URL (or
// WEBSITE_HOSTNAME): the URL agents use is then this process's own, so it
// listens at once, on --addr or a free loopback port, and getenv answers
// that URL for COFFER_PUBLIC_URL. Nobody has to choose a port that may be
// taken, and the address line says where it is. Otherwise it returns no
// listener and getenv as it was.
func listenOwnURL(standalone bool, addr string, getenv func(string) string) (net.Listener, func(string) string, error) {
	if !standalone || getenv(config.PublicURL) != "" || getenv(config.WebsiteHostname) != "" {
		return nil, getenv, nil
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	own := "http://" + ln.Addr().String()
	return ln, func(k string) string {
		if k == config.PublicURL {
			return own
		}
		return getenv(k)
	}, nil
}
