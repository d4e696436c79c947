package service

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"
)

// SystemdUnit renders the systemd unit that runs the agent as root.
//
// Hardening keeps the whole filesystem readable and writable, because the
// agent backs up any file and restores over any file: no ProtectSystem=,
// ProtectHome=, ReadOnlyPaths= or PrivateDevices=. It also leaves out
// PrivateTmp= (restores into /tmp would vanish into a private copy and it
// hides /var/tmp from backups), RestrictSUIDSGID= (restores must recreate
// setuid binaries), ProtectKernelModules= (hides /usr/lib/modules) and a
// capability bounding set (restoring owners, file capabilities and
// security.* attributes needs most of root's). What remains only takes away
// what a backup agent never does: gain privileges through exec, touch
// kernel tunables, logs or cgroups, or use realtime scheduling and new
// namespaces.
func SystemdUnit(c Config) (string, error) {
	c, err := c.normalize(path.IsAbs)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Installed by `coffer service install`; remove with `coffer service uninstall`.")
	w("[Unit]")
	w("Description=Coffer backup agent")
	w("Documentation=https://github.com/coffer-backup/coffer")
	// Backups need the network up, not just configured.
	w("Wants=network-online.target")
	w("After=network-online.target")
	w("")
	w("[Service]")
	w("Type=simple")
	exe, err := systemdExecutable(c.Executable)
	if err != nil {
		return "", err
	}
	words := []string{exe}
	for _, a := range c.Args {
		words = append(words, systemdWord(a))
	}
	w("ExecStart=%s", strings.Join(words, " "))
	for _, k := range sortedEnv(c.Env) {
		w("Environment=%s", systemdQuote(specifierEscape(k+"="+c.Env[k])))
	}
	w("User=root")
	w("Restart=on-failure")
	w("RestartSec=30")
	w("NoNewPrivileges=yes")
	w("ProtectKernelTunables=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectControlGroups=yes")
	w("RestrictRealtime=yes")
	w("RestrictNamespaces=yes")
	w("LockPersonality=yes")
	w("SystemCallArchitectures=native")
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.String(), nil
}

// specifierEscape doubles '%', which systemd expands as a specifier (%h, %n…)
// in both ExecStart= and Environment=.
func specifierEscape(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// systemdExecutable renders the program's path, the first ExecStart= word.
// systemd refuses quotes and backslashes in it, whatever the escaping, and
// doesn't expand '$' there, so '$' stays single.
func systemdExecutable(p string) (string, error) {
	if strings.ContainsAny(p, "\"'\\\x7f") {
		return "", fmt.Errorf("executable %q contains a quote or backslash, which systemd refuses in a program's path: move coffer to a folder without them (for example /usr/local/bin)", p)
	}
	p = specifierEscape(p)
	if strings.ContainsFunc(p, unicode.IsSpace) {
		return systemdQuote(p), nil
	}
	return p, nil
}

// systemdWord makes s one ExecStart= word that systemd passes unchanged:
// '%' and '$' (variable expansion) doubled, and quoted when it holds
// anything beyond plainly safe characters.
func systemdWord(s string) string {
	s = strings.ReplaceAll(specifierEscape(s), "$", "$$")
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,+@%$-") == "" {
		return s
	}
	return systemdQuote(s)
}

// systemdQuote double-quotes s with C-style escapes, as systemd unquotes it.
func systemdQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Systemd manages the service as a systemd unit in /etc/systemd/system.
type Systemd struct {
	// Root is prefixed to every path; "" means "/". Tests use a temp folder.
	Root string
	// Run runs systemctl; nil means ExecRunner.
	Run CommandRunner
	// Geteuid reports the effective user; nil means os.Geteuid.
	Geteuid func() int
}

func (s *Systemd) unitPath(name string) string {
	root := s.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, "etc", "systemd", "system", name+".service")
}

func (s *Systemd) run(ctx context.Context, args ...string) ([]byte, error) {
	run := s.Run
	if run == nil {
		run = ExecRunner
	}
	return run(ctx, "systemctl", args...)
}

func (s *Systemd) isRoot() bool {
	if s.Geteuid != nil {
		return s.Geteuid() == 0
	}
	return os.Geteuid() == 0
}

// Install writes the unit, reloads systemd, and enables and starts it.
func (s *Systemd) Install(ctx context.Context, c Config) error {
	unit, err := SystemdUnit(c)
	if err != nil {
		return fmt.Errorf("installing the service: %w", err)
	}
	if !s.isRoot() {
		return notRoot("install")
	}
	name := nameOrDefault(c.Name)
	p := s.unitPath(name)
	// systemd refuses world-writable units and anyone may read them.
	if err := writeFile(p, []byte(unit), 0o644); err != nil {
		return fmt.Errorf("writing the unit file %s: %w", p, err)
	}
	if _, err := s.run(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("reloading systemd: %w; is systemd running here?", err)
	}
	if _, err := s.run(ctx, "enable", "--now", name); err != nil {
		return fmt.Errorf("starting the service: %w; see `journalctl -u %s`", err, name)
	}
	return nil
}

// Uninstall stops and disables the unit, removes its file and reloads.
func (s *Systemd) Uninstall(ctx context.Context, name string) error {
	name = nameOrDefault(name)
	if err := checkName(name); err != nil {
		return err
	}
	if !s.isRoot() {
		return notRoot("uninstall")
	}
	p := s.unitPath(name)
	ok, err := fileExists(p)
	if err != nil {
		return fmt.Errorf("looking for the unit file: %w", err)
	}
	if !ok {
		// Not ours to remove, or already gone.
		return nil
	}
	if _, err := s.run(ctx, "disable", "--now", name); err != nil {
		return fmt.Errorf("stopping the service: %w; stop it with `systemctl disable --now %s` and retry", err, name)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("removing the unit file: %w", err)
	}
	if _, err := s.run(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("reloading systemd: %w", err)
	}
	return nil
}

// Status reports whether our unit file exists and what systemd says of it.
func (s *Systemd) Status(ctx context.Context, name string) (Status, error) {
	name = nameOrDefault(name)
	if err := checkName(name); err != nil {
		return Status{}, err
	}
	installed, err := fileExists(s.unitPath(name))
	if err != nil {
		return Status{}, fmt.Errorf("looking for the unit file: %w", err)
	}
	if !installed {
		return Status{Detail: "not installed; install with `sudo coffer service install`"}, nil
	}
	// Both exit non-zero for "inactive" or "disabled"; only output tells.
	active, aErr := s.run(ctx, "is-active", name)
	enabled, eErr := s.run(ctx, "is-enabled", name)
	st := Status{Installed: true}
	a, e := firstLine(active), firstLine(enabled)
	if a == "" && aErr != nil {
		return st, fmt.Errorf("asking systemd whether %s runs: %w", name, aErr)
	}
	if e == "" && eErr != nil {
		return st, fmt.Errorf("asking systemd whether %s starts at boot: %w", name, eErr)
	}
	st.Running = a == "active" || a == "reloading"
	st.Detail = fmt.Sprintf("%s, %s", a, e)
	if a == "failed" {
		st.Detail += fmt.Sprintf("; see `journalctl -u %s`", name)
	}
	return st, nil
}
