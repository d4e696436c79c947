// Command coffer-functions is Coffer's control plane: an Azure Functions
// custom handler built on echo. The Functions host starts it and forwards
// HTTP requests and trigger invocations to FUNCTIONS_CUSTOMHANDLER_PORT; for
// local use it runs on its own with --addr.
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

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/shared/version"
)

func main() {
	if err := run(); err != nil {
		slog.Error("coffer-functions stopped", "err", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "", "listen address (default 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, or 127.0.0.1:0)")
	flag.Parse()
	if *addr == "" {
		*addr = "127.0.0.1:0"
		if p := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"); p != "" {
			*addr = "127.0.0.1:" + p
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	slog.Info("coffer-functions listening", "addr", ln.Addr().String(), "version", version.String())

	srv := &http.Server{Handler: newServer(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newServer() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/api/v1/health", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok", "version": version.String()})
	})
	return e
}
