// Package stack runs Coffer's whole local Azure stack: Azurite (Blob, Queue,
// Table), the Service Bus emulator, the Key Vault emulator and an SMTP sink,
// each on a port the OS picks. Emulator tests start it from TestMain; the
// devstack command starts it for `make dev-up` and `make demo`.
package stack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/locate"
	"github.com/coffer-backup/coffer/emulator-tests/proc"
	"github.com/coffer-backup/coffer/emulator-tests/servicebus"
	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
)

// Environment variables through which the stack's endpoints reach Coffer's
// processes and tests. The same names point them at real Azure.
const (
	EnvStorage = "AZURE_STORAGE_CONNECTION_STRING"
	// EnvStorageCoffer is the same connection string under the name the
	// control plane reads (functions/config).
	EnvStorageCoffer = "COFFER_STORAGE_CONNECTION_STRING"
	EnvServiceBus    = "COFFER_SERVICEBUS_CONNECTION_STRING"
	EnvKeyVault      = "COFFER_KEYVAULT_URL"
	EnvSSLCertFile   = "SSL_CERT_FILE"
	EnvSMTPHost      = "COFFER_SMTP_HOST"
	EnvSMTPPort      = "COFFER_SMTP_PORT"
	// EnvSMTPSecurity: the sink speaks plain SMTP on loopback.
	EnvSMTPSecurity  = "COFFER_SMTP_SECURITY"
	EnvMailPage      = "COFFER_LOCAL_MAIL_URL"
	EnvKeyVaultLocal = "COFFER_KEYVAULT_EMULATOR" // "1": accept the emulator's static token
)

// Options configure a stack.
type Options struct {
	// StateDir holds logs, the CA certificate, captured mail and, with
	// Persist, Azurite's data. Empty means a new temporary folder, removed
	// by Stop.
	StateDir string
	// Persist keeps Azurite's data on disk in StateDir instead of memory.
	Persist bool
	// ServiceBusConfig is the emulator's Config.json; empty means the default.
	ServiceBusConfig string
	// Now is the Key Vault emulator's and the SMTP sink's clock.
	Now func() time.Time
	// MailPage serves the captured mail over HTTP on a free port.
	MailPage bool
	// KeyVaultAccess turns on the Key Vault emulator's Azure RBAC (tokens
	// mapped to principals, role assignments enforced); nil accepts any
	// token for anything.
	KeyVaultAccess *keyvault.Access
}

// Stack is a running local Azure stack.
type Stack struct {
	Azurite    *azurite.Azurite
	ServiceBus *servicebus.Emulator
	KeyVault   *keyvault.Server
	SMTP       *smtpsink.Sink

	StateDir   string
	CACertPath string // the Key Vault emulator's CA, for SSL_CERT_FILE
	MailDir    string // captured mail as .eml files
	MailURL    string // the mail page, if served

	mailSrv   *http.Server
	removeDir bool
	stopOnce  sync.Once
	stopErr   error
}

// Start brings every emulator up, the Node ones in parallel. If any fails,
// those already started are stopped before Start returns.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	s := &Stack{StateDir: o.StateDir}
	if s.StateDir == "" {
		d, err := os.MkdirTemp("", "coffer-stack-")
		if err != nil {
			return nil, fmt.Errorf("create state folder: %w", err)
		}
		s.StateDir, s.removeDir = d, true
	} else if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("create state folder: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
		}
	}()
	dir, err := locate.Dir()
	if err != nil {
		return nil, err
	}

	var wg sync.WaitGroup
	var azErr, sbErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		ao := azurite.Options{Dir: dir, LogPath: filepath.Join(s.StateDir, "azurite.log")}
		if o.Persist {
			ao.DataDir = filepath.Join(s.StateDir, "azurite")
		}
		s.Azurite, azErr = azurite.Start(ctx, ao)
	}()
	go func() {
		defer wg.Done()
		s.ServiceBus, sbErr = servicebus.Start(ctx, servicebus.Options{
			Dir: dir, ConfigPath: o.ServiceBusConfig, LogPath: filepath.Join(s.StateDir, "servicebus.log")})
	}()

	// The Go emulators start in this process while Node boots.
	// Purge protection is on, as in the deployed vault; RBAC only when asked.
	kv, kvErr := keyvault.Start(keyvault.Options{Now: o.Now, PurgeProtection: true, Access: o.KeyVaultAccess})
	if kvErr == nil {
		s.KeyVault = kv
		s.CACertPath = filepath.Join(s.StateDir, "keyvault-ca.pem")
		kvErr = kv.WriteCACert(s.CACertPath)
	}
	s.MailDir = filepath.Join(s.StateDir, "mail")
	sink, smtpErr := smtpsink.Start(smtpsink.Options{Dir: s.MailDir, Now: o.Now})
	if smtpErr == nil {
		s.SMTP = sink
		if o.MailPage {
			smtpErr = s.serveMailPage()
		}
	}
	wg.Wait()
	if err := errors.Join(wrap("Azurite", azErr), wrap("Service Bus emulator", sbErr),
		wrap("Key Vault emulator", kvErr), wrap("SMTP sink", smtpErr)); err != nil {
		return nil, err
	}
	return s, nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("start %s: %w", what, err)
}

func (s *Stack) serveMailPage() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the mail page: %w", err)
	}
	s.mailSrv = &http.Server{Handler: s.SMTP.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.MailURL = "http://" + ln.Addr().String() + "/"
	go s.mailSrv.Serve(ln)
	return nil
}

// Env is the environment that points Coffer's processes at this stack.
func (s *Stack) Env() map[string]string {
	env := map[string]string{
		EnvStorage:       s.Azurite.ConnectionString(),
		EnvStorageCoffer: s.Azurite.ConnectionString(),
		EnvServiceBus:    s.ServiceBus.ConnectionString(),
		EnvKeyVault:      s.KeyVault.URL(),
		EnvKeyVaultLocal: "1",
		EnvSSLCertFile:   s.CACertPath,
		EnvSMTPHost:      s.SMTP.Host(),
		EnvSMTPPort:      s.SMTP.Port(),
		EnvSMTPSecurity:  "none",
	}
	if s.MailURL != "" {
		env[EnvMailPage] = s.MailURL
	}
	return env
}

// Environ is Env as KEY=VALUE lines, sorted, for exec.Cmd.Env.
func (s *Stack) Environ() []string {
	env := s.Env()
	var out []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// PIDs are the child processes the stack runs, by name.
func (s *Stack) PIDs() map[string]int {
	m := map[string]int{}
	if s.Azurite != nil {
		m["azurite"] = s.Azurite.PID()
	}
	if s.ServiceBus != nil {
		m["servicebus"] = s.ServiceBus.PID()
	}
	return m
}

// Addrs are every loopback address the stack listens on, by name.
func (s *Stack) Addrs() map[string]string {
	m := map[string]string{}
	if s.Azurite != nil {
		for k, u := range map[string]string{"blob": s.Azurite.BlobURL(), "queue": s.Azurite.QueueURL(), "table": s.Azurite.TableURL()} {
			m[k] = hostPort(u)
		}
	}
	if s.ServiceBus != nil {
		m["servicebus"] = s.ServiceBus.Endpoint()
	}
	if s.KeyVault != nil {
		m["keyvault"] = hostPort(s.KeyVault.URL())
	}
	if s.SMTP != nil {
		m["smtp"] = s.SMTP.Addr()
	}
	if s.MailURL != "" {
		m["mailpage"] = hostPort(s.MailURL)
	}
	return m
}

func hostPort(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Host
}

// Stop stops everything that runs and waits for it, removing a temporary
// state folder. It is safe to call more than once.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		if s.mailSrv != nil {
			errs = append(errs, s.mailSrv.Close())
		}
		if s.SMTP != nil {
			errs = append(errs, wrapStop("SMTP sink", s.SMTP.Close()))
		}
		if s.KeyVault != nil {
			errs = append(errs, wrapStop("Key Vault emulator", s.KeyVault.Close()))
		}
		var wg sync.WaitGroup
		var azErr, sbErr error
		if s.Azurite != nil {
			wg.Go(func() { azErr = wrapStop("Azurite", s.Azurite.Stop()) })
		}
		if s.ServiceBus != nil {
			wg.Go(func() { sbErr = wrapStop("Service Bus emulator", s.ServiceBus.Stop()) })
		}
		wg.Wait()
		errs = append(errs, azErr, sbErr)
		if s.removeDir {
			errs = append(errs, os.RemoveAll(s.StateDir))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

func wrapStop(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("stop %s: %w", what, err)
}

// CheckGone verifies that none of the given processes runs and nothing
// listens on any of the addresses, which is what Stop promises.
func CheckGone(pids map[string]int, addrs map[string]string) error {
	var errs []error
	for name, pid := range pids {
		if proc.Alive(pid) {
			errs = append(errs, fmt.Errorf("%s (pid %d) is still running", name, pid))
		}
	}
	for name, addr := range addrs {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			errs = append(errs, fmt.Errorf("%s still listens on %s", name, addr))
		}
	}
	return errors.Join(errs...)
}

// Runner is what TestMain is given (*testing.M).
type Runner interface{ Run() int }

// RunStories is a TestMain for user stories that drive the real coffer
// binary on the local stack: it builds coffer into a temporary folder,
// starts the stack, hands both to ready, runs the tests and stops the
// stack, whose failure to stop fails the run. It returns the exit code.
func RunStories(m Runner, tempPrefix string, ready func(coffer string, st *Stack)) int {
	dir, err := os.MkdirTemp("", tempPrefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	coffer := filepath.Join(dir, "coffer")
	if out, err := exec.Command("go", "build", "-o", coffer, "github.com/coffer-backup/coffer/agent/cmd/coffer").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build coffer: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	st, err := Start(ctx, Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the local stack (run make deps):", err)
		return 1
	}
	ready(coffer, st)
	code := m.Run()
	if err := st.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the stack:", err)
		code = 1
	}
	return code
}

// AgentEnv is the environment of a registered machine's coffer: this
// process's, the stack's variables (env), no passphrase or standalone
// repository leaking from the caller's shell, and a cache inside the
// machine's config folder.
func AgentEnv(env []string, configDir string) []string {
	out := append(os.Environ(), env...)
	return append(out, "COFFER_PASSPHRASE=", "COFFER_REPOSITORY=", "XDG_CACHE_HOME="+filepath.Join(configDir, "cache"))
}
