// Command coffer-functions is Coffer's control plane: an Azure Functions
// custom handler built on echo. The Functions host starts it and forwards
// HTTP requests and trigger invocations to FUNCTIONS_CUSTOMHANDLER_PORT.
// Standalone (local use, the emulator tests) it listens on --addr and runs
// the timers and the alerts queue itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("coffer-functions stopped", "err", err.Error())
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	addr := flag.String("addr", "", "listen address (default 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, or 127.0.0.1:0)")
	standalone := flag.Bool("standalone", os.Getenv(config.Port) == "", "run the timers and receive the alerts queue here instead of the Functions host")
	flag.Parse()
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return fmt.Errorf("settings are incomplete (see docs/deploy.md):\n%w", err)
	}
	if *addr == "" {
		*addr = "127.0.0.1:0"
		if cfg.Port != "" {
			*addr = "127.0.0.1:" + cfg.Port
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	startCtx, cancel := context.WithTimeout(ctx, 45*time.Second) // the host allows 60 s
	a, err := app.New(startCtx, cfg, app.NewClock(time.Now), log, !*standalone)
	cancel()
	if err != nil {
		return err
	}
	defer a.Close(context.Background())

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	// Tests and devstack read this line for the address.
	fmt.Fprintf(os.Stdout, "coffer-functions listening on http://%s\n", ln.Addr())
	log.Info("coffer-functions listening", "addr", ln.Addr().String(), "version", version.String(), "standalone", *standalone)

	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	if *standalone {
		go func() {
			if err := a.RunTriggers(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("triggers: %w", err)
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	return err
}
