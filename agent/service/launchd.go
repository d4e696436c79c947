package service

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultLabel is the launchd label of the service named DefaultName.
const DefaultLabel = "io.coffer.agent"

// launchdLogDir is the log folder when Config.LogDir is empty; it matches
// logging.DefaultDir on macOS.
const launchdLogDir = "/Library/Logs/Coffer"

func launchdDefaults(c Config) Config {
	if c.LogDir == "" {
		c.LogDir = launchdLogDir
	}
	return c
}

// LaunchdLabel is the launchd label for a service name: DefaultLabel for
// "coffer", the name itself when it already looks like a label (has a dot),
// else "io.coffer.<name>".
func LaunchdLabel(name string) string {
	switch name = nameOrDefault(name); {
	case name == DefaultName:
		return DefaultLabel
	case strings.Contains(name, "."):
		return name
	default:
		return "io.coffer." + name
	}
}

// LaunchdPlist renders the launchd daemon definition, for
// /Library/LaunchDaemons/<label>.plist. Daemons there run as root.
//
// The agent's own log goes to LogDir/coffer.log; launchd's stdout and
// stderr files next to it catch what comes before the logger or bypasses
// it, such as a panic.
//
// macOS also asks for Full Disk Access (System Settings → Privacy &
// Security) before any process may read users' protected folders; only the
// admin can grant that, so installing can't.
func LaunchdPlist(c Config) (string, error) {
	c, err := launchdDefaults(c).normalize(path.IsAbs)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	w := func(s string) { b.WriteString(s + "\n") }
	str := func(indent, s string) { w(indent + "<string>" + xmlEscape(s) + "</string>") }
	w(`<?xml version="1.0" encoding="UTF-8"?>`)
	w(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`)
	w(`<!-- Installed by "coffer service install"; remove with "coffer service uninstall". -->`)
	w(`<plist version="1.0">`)
	w(`<dict>`)
	w("\t<key>Label</key>")
	str("\t", LaunchdLabel(c.Name))
	w("\t<key>ProgramArguments</key>")
	w("\t<array>")
	str("\t\t", c.Executable)
	for _, a := range c.Args {
		str("\t\t", a)
	}
	w("\t</array>")
	if len(c.Env) > 0 {
		w("\t<key>EnvironmentVariables</key>")
		w("\t<dict>")
		for _, k := range sortedEnv(c.Env) {
			w("\t\t<key>" + xmlEscape(k) + "</key>")
			str("\t\t", c.Env[k])
		}
		w("\t</dict>")
	}
	w("\t<key>RunAtLoad</key>")
	w("\t<true/>")
	w("\t<key>KeepAlive</key>")
	w("\t<true/>")
	// Like systemd's RestartSec=30: a crash loop doesn't spin.
	w("\t<key>ThrottleInterval</key>")
	w("\t<integer>30</integer>")
	w("\t<key>StandardOutPath</key>")
	str("\t", path.Join(c.LogDir, "launchd-stdout.log"))
	w("\t<key>StandardErrorPath</key>")
	str("\t", path.Join(c.LogDir, "launchd-stderr.log"))
	w(`</dict>`)
	w(`</plist>`)
	return b.String(), nil
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // writes to memory: can't fail
	return b.String()
}

// Launchd manages the service as a launchd daemon in /Library/LaunchDaemons.
type Launchd struct {
	// Root is prefixed to every path; "" means "/". Tests use a temp folder.
	Root string
	// Run runs launchctl; nil means ExecRunner.
	Run CommandRunner
	// Geteuid reports the effective user; nil means os.Geteuid.
	Geteuid func() int
}

func (l *Launchd) root() string {
	if l.Root == "" {
		return "/"
	}
	return l.Root
}

func (l *Launchd) plistPath(label string) string {
	return filepath.Join(l.root(), "Library", "LaunchDaemons", label+".plist")
}

func (l *Launchd) run(ctx context.Context, args ...string) ([]byte, error) {
	run := l.Run
	if run == nil {
		run = ExecRunner
	}
	return run(ctx, "launchctl", args...)
}

func (l *Launchd) isRoot() bool {
	if l.Geteuid != nil {
		return l.Geteuid() == 0
	}
	return os.Geteuid() == 0
}

// Install writes the plist and loads it, replacing a loaded older version.
func (l *Launchd) Install(ctx context.Context, c Config) error {
	plist, err := LaunchdPlist(c)
	if err != nil {
		return fmt.Errorf("installing the service: %w", err)
	}
	if !l.isRoot() {
		return notRoot("install")
	}
	label := LaunchdLabel(c.Name)
	logDir := launchdDefaults(c).LogDir
	// launchd won't start a job whose log folder is missing.
	if err := os.MkdirAll(filepath.Join(l.root(), logDir), 0o700); err != nil {
		return fmt.Errorf("creating the log folder: %w", err)
	}
	// bootstrap fails on a loaded label; an error here just means it wasn't.
	_, _ = l.run(ctx, "bootout", "system/"+label)
	p := l.plistPath(label)
	// launchd ignores plists writable by others than root.
	if err := writeFile(p, []byte(plist), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	// bootstrap refuses a label someone disabled with `launchctl disable`.
	if _, err := l.run(ctx, "enable", "system/"+label); err != nil {
		return fmt.Errorf("enabling the service: %w", err)
	}
	if _, err := l.run(ctx, "bootstrap", "system", p); err != nil {
		return fmt.Errorf("loading the service: %w; see %s and `launchctl print system/%s`", err, logDir, label)
	}
	return nil
}

// Uninstall unloads the daemon and removes its plist.
func (l *Launchd) Uninstall(ctx context.Context, name string) error {
	name = nameOrDefault(name)
	if err := checkName(name); err != nil {
		return err
	}
	if !l.isRoot() {
		return notRoot("uninstall")
	}
	label := LaunchdLabel(name)
	p := l.plistPath(label)
	ok, err := fileExists(p)
	if err != nil {
		return fmt.Errorf("looking for %s: %w", p, err)
	}
	if !ok {
		return nil
	}
	if _, err := l.run(ctx, "bootout", "system/"+label); err != nil {
		// bootout also fails when the job isn't loaded; that's fine.
		if _, perr := l.run(ctx, "print", "system/"+label); perr == nil {
			return fmt.Errorf("stopping the service: %w; stop it with `sudo launchctl bootout system/%s` and retry", err, label)
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	return nil
}

// Status reports whether the plist exists and what launchd says of the job.
func (l *Launchd) Status(ctx context.Context, name string) (Status, error) {
	name = nameOrDefault(name)
	if err := checkName(name); err != nil {
		return Status{}, err
	}
	label := LaunchdLabel(name)
	installed, err := fileExists(l.plistPath(label))
	if err != nil {
		return Status{}, fmt.Errorf("looking for the plist: %w", err)
	}
	if !installed {
		return Status{Detail: "not installed; install with `sudo coffer service install`"}, nil
	}
	out, err := l.run(ctx, "print", "system/"+label)
	if err != nil {
		return Status{Installed: true, Detail: "installed but not loaded; reinstall with `sudo coffer service install`"}, nil
	}
	st := Status{Installed: true}
	state, pid := "unknown", ""
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " = ")
		switch {
		case !ok:
		case k == "state" && state == "unknown":
			state = v
		case k == "pid" && pid == "":
			pid = v
		}
	}
	st.Running = state == "running"
	st.Detail = "loaded, " + state
	if pid != "" {
		st.Detail += ", pid " + pid
	}
	return st, nil
}
