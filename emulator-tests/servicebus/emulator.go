// Package servicebus starts the local Service Bus emulator (emulator-tests/servicebus/server.js,
// an AMQP 1.0 broker on rhea) for tests and local runs, and hands out the connection string the
// azservicebus client needs to reach it.
//
// The server is started as
//
//	node server.js --config PATH --host 127.0.0.1 --port 0
//
// (with --tier when Options.Tier is set) and is ready once it prints "Service Bus emulator listening at amqp://HOST:PORT". It binds port 0,
// so the OS picks a free port, and it exits on SIGTERM or SIGINT.
package servicebus

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/locate"
	"github.com/coffer-backup/coffer/emulator-tests/proc"
)

// ReadyPrefix starts the line server.js prints once it listens.
const ReadyPrefix = "Service Bus emulator listening at amqp://"

var readyLine = regexp.MustCompile(`^Service Bus emulator listening at amqp://(\S+):(\d+)$`)

// stopGrace is how long Stop waits after SIGTERM before it kills the server.
const stopGrace = 5 * time.Second

// Options configure Start. Every field is optional.
type Options struct {
	// Dir is the emulator-tests folder (the one holding servicebus/server.js and node_modules).
	// Empty means locate.Dir: $COFFER_EMULATOR_DIR or the first one above the working directory.
	Dir string
	// ConfigPath is the entity configuration in the official emulator's Config.json shape.
	// Empty means config.json beside server.js.
	ConfigPath string
	// NodePath is the node executable; empty means node on PATH.
	NodePath string
	// LogPath receives the server's output; empty discards it.
	LogPath string
	// Env is extra environment for the server, e.g. "SB_EMULATOR_DEBUG=1".
	Env []string
	// Tier is the namespace's tier, which sets the message size limit: "Basic" or "Standard"
	// (256 KB), or "Premium" (1 MB, or an entity's MaxMessageSizeInKilobytes). Empty means Standard,
	// what Coffer deploys.
	Tier string
}

// Emulator is a running Service Bus emulator.
type Emulator struct {
	p    *proc.Process
	host string
	port int
}

// Start launches the emulator and returns once it listens.
func Start(ctx context.Context, opts Options) (*Emulator, error) {
	dir, err := locate.Resolve(opts.Dir)
	if err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "servicebus", "server.js")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("servicebus emulator: %w", err)
	}
	config := opts.ConfigPath
	if config == "" {
		config = filepath.Join(dir, "servicebus", "config.json")
	}
	if config, err = filepath.Abs(config); err != nil {
		return nil, err
	}
	if _, err := os.Stat(config); err != nil {
		return nil, fmt.Errorf("servicebus emulator config: %w", err)
	}
	if _, err := locate.NodeModule(dir, "rhea", "package.json"); err != nil {
		return nil, err
	}
	node, err := locate.Node(opts.NodePath)
	if err != nil {
		return nil, err
	}

	args := []string{script, "--config", config, "--host", "127.0.0.1", "--port", "0"}
	if opts.Tier != "" {
		args = append(args, "--tier", opts.Tier)
	}
	var (
		mu   sync.Mutex
		host string
		port int
	)
	p, err := proc.Start(ctx, proc.Spec{
		Name:    "servicebus",
		Path:    node,
		Args:    args,
		Dir:     dir,
		Env:     opts.Env,
		LogPath: opts.LogPath,
		Ready: func(line string) bool {
			m := readyLine.FindStringSubmatch(line)
			if m == nil {
				return false
			}
			n, err := strconv.Atoi(m[2])
			if err != nil {
				return false
			}
			mu.Lock()
			host, port = strings.Trim(m[1], "[]"), n
			mu.Unlock()
			return true
		},
		ReadyTimeout: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return &Emulator{p: p, host: host, port: port}, nil
}

// Endpoint is the host:port the emulator listens on.
func (e *Emulator) Endpoint() string {
	return net.JoinHostPort(e.host, strconv.Itoa(e.port))
}

// ConnectionString is what azservicebus.NewClientFromConnectionString needs to reach the emulator.
func (e *Emulator) ConnectionString() string {
	return "Endpoint=sb://" + e.Endpoint() +
		";SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
}

// PID is the server's process ID.
func (e *Emulator) PID() int { return e.p.PID() }

// Done is closed when the server has exited.
func (e *Emulator) Done() <-chan struct{} { return e.p.Done() }

// Stop terminates the server (SIGTERM, then SIGKILL after a grace period) and waits for it to exit.
// Calling it again is safe.
func (e *Emulator) Stop() error { return e.p.Stop(stopGrace) }
