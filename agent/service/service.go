// Package service installs `coffer run` as a system service, so backups run
// at boot without anyone logged in: a systemd unit on Linux, a launchd
// daemon on macOS, a Windows service on Windows.
package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// DefaultName is the service's name when Config.Name is empty.
const DefaultName = "coffer"

// The service passes Config.ConfigDir and Config.LogDir to the agent in
// these environment variables.
const (
	EnvConfigDir = "COFFER_CONFIG_DIR"
	EnvLogDir    = "COFFER_LOG_DIR"
)

// Config describes the service to install.
type Config struct {
	// Name names the service; default "coffer". Letters, digits, '.', '_',
	// '-' and '@', starting with a letter or digit.
	Name string
	// Executable is the absolute path of the coffer binary.
	Executable string
	// Args are its arguments; default ["run"].
	Args []string
	// ConfigDir and LogDir, when set, must be absolute; the agent gets them
	// as COFFER_CONFIG_DIR and COFFER_LOG_DIR.
	ConfigDir string
	LogDir    string
	// Env is more environment for the agent.
	Env map[string]string
}

// Status is what the service manager reports.
type Status struct {
	Installed, Running bool
	// Detail is the manager's own words, for people.
	Detail string
}

// Manager installs, removes and inspects the service.
type Manager interface {
	// Install installs the service, enables it at boot and starts it.
	// Installing again updates it.
	Install(ctx context.Context, c Config) error
	// Uninstall stops and removes it; a service that isn't there is not an error.
	Uninstall(ctx context.Context, name string) error
	Status(ctx context.Context, name string) (Status, error)
}

// CommandRunner runs a command and returns its standard output, also when
// it fails (systemctl is-active says "inactive" with exit status 3). Tests
// record commands instead.
type CommandRunner func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecRunner runs commands for real; a failure's error includes its stderr.
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		line := strings.Join(append([]string{name}, args...), " ")
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return out, fmt.Errorf("%s: %w: %s", line, err, msg)
		}
		return out, fmt.Errorf("%s: %w", line, err)
	}
	return out, nil
}

// ErrNotPrivileged is returned, wrapped, when installing or removing the
// service without root or Administrator rights.
var ErrNotPrivileged = errors.New("not privileged")

func notRoot(verb string) error {
	return fmt.Errorf("%w: %s the service changes system files; run as root: sudo coffer service %s", ErrNotPrivileged, verbing(verb), verb)
}

func verbing(verb string) string {
	if verb == "uninstall" {
		return "uninstalling"
	}
	return "installing"
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)

func checkName(name string) error {
	if !validName.MatchString(name) || strings.Contains(name, "..") || len(name) > 200 {
		return fmt.Errorf("service name %q is not valid: use letters, digits, '.', '_', '-' or '@', starting with a letter or digit", name)
	}
	return nil
}

func nameOrDefault(name string) string {
	if name == "" {
		return DefaultName
	}
	return name
}

var validEnvKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// normalize fills in defaults and rejects what would make a broken or unsafe
// service definition; isAbs is the target OS's notion of an absolute path.
func (c Config) normalize(isAbs func(string) bool) (Config, error) {
	c.Name = nameOrDefault(c.Name)
	if err := checkName(c.Name); err != nil {
		return c, err
	}
	if c.Executable == "" {
		return c, errors.New("no executable given: pass the absolute path of the coffer binary")
	}
	// The service manager starts us from another working directory, so a
	// relative path would find another binary or none.
	if !isAbs(c.Executable) {
		example := "/usr/local/bin/coffer"
		if isAbs(`C:\x`) {
			example = `C:\Program Files\Coffer\coffer.exe`
		}
		return c, fmt.Errorf("executable %q is relative: pass its absolute path (for example %q)", c.Executable, example)
	}
	if c.Args == nil {
		c.Args = []string{"run"}
	}
	for _, d := range []struct{ what, path string }{{"config folder", c.ConfigDir}, {"log folder", c.LogDir}} {
		if d.path != "" && !isAbs(d.path) {
			return c, fmt.Errorf("%s %q is relative: pass an absolute path", d.what, d.path)
		}
	}
	if err := noControl("executable", c.Executable); err != nil {
		return c, err
	}
	for _, a := range c.Args {
		if err := noControl("argument", a); err != nil {
			return c, err
		}
	}
	env := maps.Clone(c.Env)
	if env == nil {
		env = map[string]string{}
	}
	for k, v := range env {
		if !validEnvKey.MatchString(k) {
			return c, fmt.Errorf("environment variable name %q is not valid: use letters, digits and '_', not starting with a digit", k)
		}
		if err := noControl("environment variable "+k, v); err != nil {
			return c, err
		}
	}
	for _, d := range []struct{ key, path string }{{EnvConfigDir, c.ConfigDir}, {EnvLogDir, c.LogDir}} {
		if d.path == "" {
			continue
		}
		if err := noControl(d.key, d.path); err != nil {
			return c, err
		}
		if v, ok := env[d.key]; ok && v != d.path {
			return c, fmt.Errorf("environment sets %s=%q but the folder given is %q: set one or the other", d.key, v, d.path)
		}
		env[d.key] = d.path
	}
	c.Env = env
	return c, nil
}

// noControl rejects newlines and other control characters: they would end a
// unit file line early or make invalid XML, and no sane path contains them.
func noControl(what, s string) error {
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%s %q contains a control character: remove it", what, s)
	}
	return nil
}

// sortedEnv lists the environment in a stable order, so reinstalling writes
// the same file.
func sortedEnv(env map[string]string) []string {
	return slices.Sorted(maps.Keys(env))
}

// writeFile replaces path atomically with mode perm, whatever the umask, so
// a crash leaves the old file or the new one, never half of one.
func writeFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	err = errors.Join(err, f.Chmod(perm), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(s)
}
