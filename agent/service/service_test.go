package service

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// fakeRunner records commands instead of running them and answers from replies.
type fakeRunner struct {
	calls   []string
	replies map[string]reply
}

type reply struct {
	out string
	err error
}

func (f *fakeRunner) run(_ context.Context, name string, args ...string) ([]byte, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	f.calls = append(f.calls, line)
	r := f.replies[line]
	return []byte(r.out), r.err
}

func asRoot() int   { return 0 }
func asNobody() int { return 65534 }

var errExit = errors.New("exit status 1")

func lines(s string) []string { return strings.Split(s, "\n") }

func TestSystemdUnit(t *testing.T) {
	tests := []struct {
		name    string
		c       Config
		want    []string // whole lines, in this order
		notWant []string // substrings
	}{
		{
			name: "defaults",
			c:    Config{Executable: "/usr/local/bin/coffer"},
			want: []string{
				"[Unit]",
				"Wants=network-online.target",
				"After=network-online.target",
				"[Service]",
				"ExecStart=/usr/local/bin/coffer run",
				"User=root",
				"Restart=on-failure",
				"RestartSec=30",
				"NoNewPrivileges=yes",
				"[Install]",
				"WantedBy=multi-user.target",
			},
			// Each would stop backing up or restoring some files.
			notWant: []string{"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ReadOnlyPaths", "RestrictSUIDSGID", "ProtectKernelModules", "CapabilityBoundingSet", "Environment="},
		},
		{
			name: "path with spaces and percent",
			c:    Config{Executable: "/opt/My Apps/100%/coffer", Args: []string{"run"}},
			want: []string{`ExecStart="/opt/My Apps/100%%/coffer" run`},
		},
		{
			name: "arguments with quotes, specifiers and variables",
			c:    Config{Executable: "/usr/bin/coffer", Args: []string{"run", "--tag", `say "hi"`, "it's", "50%", "$HOME", `a\b`, "", "a;b"}},
			want: []string{`ExecStart=/usr/bin/coffer run --tag "say \"hi\"" "it's" 50%% $$HOME "a\\b" "" "a;b"`},
		},
		{
			name: "environment escaped and sorted, folders added",
			c: Config{
				Executable: "/usr/bin/coffer",
				ConfigDir:  "/etc/coffer",
				LogDir:     "/var/log/my logs",
				Env:        map[string]string{"Z": "last", "A": `q"uo\te 100% $X`, "HTTPS_PROXY": "http://proxy:3128"},
			},
			want: []string{
				`Environment="A=q\"uo\\te 100%% $X"`,
				`Environment="COFFER_CONFIG_DIR=/etc/coffer"`,
				`Environment="COFFER_LOG_DIR=/var/log/my logs"`,
				`Environment="HTTPS_PROXY=http://proxy:3128"`,
				`Environment="Z=last"`,
			},
		},
		{
			name: "explicit empty arguments",
			c:    Config{Executable: "/usr/bin/coffer", Args: []string{}},
			want: []string{"ExecStart=/usr/bin/coffer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unit, err := SystemdUnit(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			got := lines(unit)
			at := 0
			for _, w := range tt.want {
				i := slices.Index(got[at:], w)
				if i < 0 {
					t.Fatalf("unit lacks line %q (in order) in:\n%s", w, unit)
				}
				at += i + 1
			}
			for _, nw := range tt.notWant {
				if strings.Contains(unit, nw) {
					t.Errorf("unit contains %q:\n%s", nw, unit)
				}
			}
		})
	}
}

func TestConfigRejected(t *testing.T) {
	ok := Config{Executable: "/usr/bin/coffer"}
	with := func(f func(*Config)) Config { c := ok; f(&c); return c }
	tests := []struct {
		name    string
		c       Config
		wantErr string
	}{
		{"relative executable", with(func(c *Config) { c.Executable = "coffer" }), "relative"},
		{"dot-relative executable", with(func(c *Config) { c.Executable = "./bin/coffer" }), "relative"},
		{"no executable", with(func(c *Config) { c.Executable = "" }), "no executable"},
		{"relative config folder", with(func(c *Config) { c.ConfigDir = "etc/coffer" }), "relative"},
		{"relative log folder", with(func(c *Config) { c.LogDir = "logs" }), "relative"},
		{"name with a slash", with(func(c *Config) { c.Name = "../../etc/passwd" }), "not valid"},
		{"name with dot-dot", with(func(c *Config) { c.Name = "a..b" }), "not valid"},
		{"name starting with a dash", with(func(c *Config) { c.Name = "-x" }), "not valid"},
		{"newline in an argument", with(func(c *Config) { c.Args = []string{"run\nExecStartPre=/bin/evil"} }), "control character"},
		{"newline in an env value", with(func(c *Config) { c.Env = map[string]string{"A": "x\ny"} }), "control character"},
		{"bad env name", with(func(c *Config) { c.Env = map[string]string{"A-B": "x"} }), "not valid"},
		{"env name starting with a digit", with(func(c *Config) { c.Env = map[string]string{"1A": "x"} }), "not valid"},
		{"env contradicts the log folder", with(func(c *Config) { c.LogDir = "/a"; c.Env = map[string]string{EnvLogDir: "/b"} }), "one or the other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for what, render := range map[string]func(Config) (string, error){"systemd": SystemdUnit, "launchd": LaunchdPlist} {
				if _, err := render(tt.c); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s: err = %v, want it to mention %q", what, err, tt.wantErr)
				}
			}
		})
	}
}

func TestSystemdRefusesQuotesInExecutable(t *testing.T) {
	// systemd rejects these in a program's path however they are escaped.
	for _, exe := range []string{`/opt/"coffer"/coffer`, "/opt/it's/coffer", `/opt/back\slash/coffer`} {
		if _, err := SystemdUnit(Config{Executable: exe}); err == nil || !strings.Contains(err.Error(), "move coffer") {
			t.Errorf("%s: err = %v, want a refusal saying what to do", exe, err)
		}
	}
}

// TestSystemdUnitVerifies has systemd itself parse a rendered unit, where
// systemd-analyze is installed.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	dir := filepath.Join(t.TempDir(), "My Apps 100%")
	exe := filepath.Join(dir, "coffer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit, err := SystemdUnit(Config{
		Name: "coffer-verify", Executable: exe,
		Args: []string{"run", `say "hi"`, "$HOME", "50%"},
		Env:  map[string]string{"A": `q"uo\te 100% $X`}, LogDir: "/var/log/my logs",
	})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "coffer-verify.service")
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", p).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\nunit:\n%s", err, out, unit)
	}
}

func TestSystemdInstall(t *testing.T) {
	root := t.TempDir()
	f := &fakeRunner{}
	m := &Systemd{Root: root, Run: f.run, Geteuid: asRoot}
	c := Config{Executable: "/usr/local/bin/coffer", Args: []string{"run"}, LogDir: "/var/log/coffer"}
	for range 2 { // installing again updates in place
		if err := m.Install(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"systemctl daemon-reload", "systemctl enable --now coffer", "systemctl daemon-reload", "systemctl enable --now coffer"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("commands = %q, want %q", f.calls, want)
	}
	dir := filepath.Join(root, "etc", "systemd", "system")
	p := filepath.Join(dir, "coffer.service")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 {
		t.Errorf("unit mode = %v, want 0644", fi.Mode().Perm())
	}
	got, _ := os.ReadFile(p)
	if wantUnit, _ := SystemdUnit(c); string(got) != wantUnit {
		t.Errorf("unit file = %q, want %q", got, wantUnit)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("unit folder holds %d entries, want only the unit (no temp files)", len(ents))
	}
}

func TestSystemdInstallFails(t *testing.T) {
	tests := []struct {
		name      string
		c         Config
		euid      func() int
		replies   map[string]reply
		wantErr   []string
		wantCalls []string
		wantFile  bool
	}{
		{
			name:    "not root",
			c:       Config{Executable: "/usr/bin/coffer"},
			euid:    asNobody,
			wantErr: []string{"run as root", "sudo coffer service install"},
		},
		{
			name:    "relative executable",
			c:       Config{Executable: "bin/coffer"},
			euid:    asRoot,
			wantErr: []string{"relative", "absolute path"},
		},
		{
			name:      "start fails",
			c:         Config{Executable: "/usr/bin/coffer"},
			euid:      asRoot,
			replies:   map[string]reply{"systemctl enable --now coffer": {err: fmt.Errorf("systemctl enable --now coffer: %w: Job failed", errExit)}},
			wantErr:   []string{"Job failed", "journalctl -u coffer"},
			wantCalls: []string{"systemctl daemon-reload", "systemctl enable --now coffer"},
			wantFile:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			f := &fakeRunner{replies: tt.replies}
			m := &Systemd{Root: root, Run: f.run, Geteuid: tt.euid}
			err := m.Install(context.Background(), tt.c)
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to mention %q", err, w)
				}
			}
			if !slices.Equal(f.calls, tt.wantCalls) {
				t.Errorf("commands = %q, want %q", f.calls, tt.wantCalls)
			}
			_, statErr := os.Stat(filepath.Join(root, "etc", "systemd", "system", "coffer.service"))
			if (statErr == nil) != tt.wantFile {
				t.Errorf("unit file exists = %v, want %v", statErr == nil, tt.wantFile)
			}
		})
	}
	var err error = (&Systemd{Root: t.TempDir(), Run: (&fakeRunner{}).run, Geteuid: asNobody}).Install(context.Background(), Config{Executable: "/x"})
	if !errors.Is(err, ErrNotPrivileged) {
		t.Errorf("err = %v, want ErrNotPrivileged", err)
	}
}

func TestSystemdUninstall(t *testing.T) {
	tests := []struct {
		name      string
		installed bool
		euid      func() int
		replies   map[string]reply
		wantErr   string
		wantCalls []string
		wantFile  bool
	}{
		{
			name: "installed", installed: true, euid: asRoot,
			wantCalls: []string{"systemctl disable --now coffer", "systemctl daemon-reload"},
		},
		{name: "not installed", euid: asRoot},
		{name: "not root", installed: true, euid: asNobody, wantErr: "sudo coffer service uninstall", wantFile: true},
		{
			name: "stop fails", installed: true, euid: asRoot,
			replies:   map[string]reply{"systemctl disable --now coffer": {err: errExit}},
			wantErr:   "systemctl disable --now coffer",
			wantCalls: []string{"systemctl disable --now coffer"},
			wantFile:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			f := &fakeRunner{replies: tt.replies}
			m := &Systemd{Root: root, Run: f.run, Geteuid: tt.euid}
			p := filepath.Join(root, "etc", "systemd", "system", "coffer.service")
			if tt.installed {
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte("[Unit]\n"), 0o644)
			}
			err := m.Uninstall(context.Background(), "")
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if !slices.Equal(f.calls, tt.wantCalls) {
				t.Errorf("commands = %q, want %q", f.calls, tt.wantCalls)
			}
			if _, err := os.Stat(p); (err == nil) != tt.wantFile {
				t.Errorf("unit file exists = %v, want %v", err == nil, tt.wantFile)
			}
		})
	}
}

func TestSystemdStatus(t *testing.T) {
	tests := []struct {
		name      string
		installed bool
		replies   map[string]reply
		want      Status
		wantErr   bool
	}{
		{name: "not installed", want: Status{Detail: "not installed; install with `sudo coffer service install`"}},
		{
			name: "running", installed: true,
			replies: map[string]reply{
				"systemctl is-active backup":  {out: "active\n"},
				"systemctl is-enabled backup": {out: "enabled\n"},
			},
			want: Status{Installed: true, Running: true, Detail: "active, enabled"},
		},
		{
			name: "stopped and disabled", installed: true,
			replies: map[string]reply{
				"systemctl is-active backup":  {out: "inactive\n", err: errExit},
				"systemctl is-enabled backup": {out: "disabled\n", err: errExit},
			},
			want: Status{Installed: true, Detail: "inactive, disabled"},
		},
		{
			name: "failed", installed: true,
			replies: map[string]reply{
				"systemctl is-active backup":  {out: "failed\n", err: errExit},
				"systemctl is-enabled backup": {out: "enabled\n"},
			},
			want: Status{Installed: true, Detail: "failed, enabled; see `journalctl -u backup`"},
		},
		{
			name: "systemctl missing", installed: true,
			replies: map[string]reply{"systemctl is-active backup": {err: exec.ErrNotFound}},
			want:    Status{Installed: true},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.installed {
				p := filepath.Join(root, "etc", "systemd", "system", "backup.service")
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, nil, 0o644)
			}
			f := &fakeRunner{replies: tt.replies}
			// Status needs no root.
			got, err := (&Systemd{Root: root, Run: f.run, Geteuid: asNobody}).Status(context.Background(), "backup")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("status = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// plistStrings returns the text of each <key> and <string> in order, after
// parsing the plist as XML: escaping went right if the values come back.
func plistStrings(t *testing.T, plist string) []string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(plist))
	d.Strict = true
	var out []string
	var in string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("plist isn't valid XML: %v\n%s", err, plist)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			in = tok.Name.Local
			if in == "string" || in == "key" {
				out = append(out, "")
			}
		case xml.CharData:
			if in == "string" || in == "key" {
				out[len(out)-1] += string(tok)
			}
		case xml.EndElement:
			in = ""
		}
	}
}

func TestLaunchdPlist(t *testing.T) {
	tests := []struct {
		name     string
		c        Config
		want     []string // keys and strings, in order
		wantText []string // raw lines
	}{
		{
			name: "defaults",
			c:    Config{Executable: "/usr/local/bin/coffer"},
			want: []string{
				"Label", "io.coffer.agent",
				"ProgramArguments", "/usr/local/bin/coffer", "run",
				"EnvironmentVariables", "COFFER_LOG_DIR", "/Library/Logs/Coffer",
				"RunAtLoad", "KeepAlive", "ThrottleInterval",
				"StandardOutPath", "/Library/Logs/Coffer/launchd-stdout.log",
				"StandardErrorPath", "/Library/Logs/Coffer/launchd-stderr.log",
			},
			wantText: []string{"\t<key>RunAtLoad</key>", "\t<true/>", "\t<key>KeepAlive</key>", "\t<integer>30</integer>"},
		},
		{
			name: "escaping",
			c: Config{
				Name:       "nightly",
				Executable: `/Applications/My "Best" <Apps> & Co/coffer`,
				Args:       []string{"run", "it's"},
				LogDir:     "/Library/Logs/Coffer & Co",
				Env:        map[string]string{"A": `<x y="1">&amp;</x>`},
			},
			want: []string{
				"Label", "io.coffer.nightly",
				"ProgramArguments", `/Applications/My "Best" <Apps> & Co/coffer`, "run", "it's",
				"EnvironmentVariables", "A", `<x y="1">&amp;</x>`, "COFFER_LOG_DIR", "/Library/Logs/Coffer & Co",
				"RunAtLoad", "KeepAlive", "ThrottleInterval",
				"StandardOutPath", "/Library/Logs/Coffer & Co/launchd-stdout.log",
				"StandardErrorPath", "/Library/Logs/Coffer & Co/launchd-stderr.log",
			},
			wantText: []string{"\t\t<string>/Applications/My &#34;Best&#34; &lt;Apps&gt; &amp; Co/coffer</string>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plist, err := LaunchdPlist(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := plistStrings(t, plist); !slices.Equal(got, tt.want) {
				t.Errorf("plist values = %q\nwant %q", got, tt.want)
			}
			for _, w := range tt.wantText {
				if !slices.Contains(lines(plist), w) {
					t.Errorf("plist lacks line %q:\n%s", w, plist)
				}
			}
			if !strings.HasPrefix(plist, `<?xml version="1.0" encoding="UTF-8"?>`) {
				t.Errorf("plist doesn't start with the XML declaration")
			}
		})
	}
}

func TestLaunchdLabel(t *testing.T) {
	for name, want := range map[string]string{"": DefaultLabel, "coffer": DefaultLabel, "nightly": "io.coffer.nightly", "com.example.backup": "com.example.backup"} {
		if got := LaunchdLabel(name); got != want {
			t.Errorf("LaunchdLabel(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestLaunchdInstall(t *testing.T) {
	root := t.TempDir()
	f := &fakeRunner{replies: map[string]reply{"launchctl bootout system/io.coffer.agent": {err: errExit}}} // not loaded yet
	m := &Launchd{Root: root, Run: f.run, Geteuid: asRoot}
	c := Config{Executable: "/usr/local/bin/coffer"}
	if err := m.Install(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "Library", "LaunchDaemons", "io.coffer.agent.plist")
	want := []string{
		"launchctl bootout system/io.coffer.agent",
		"launchctl enable system/io.coffer.agent",
		"launchctl bootstrap system " + p,
	}
	if !slices.Equal(f.calls, want) {
		t.Errorf("commands = %q, want %q", f.calls, want)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if wantPlist, _ := LaunchdPlist(c); string(got) != wantPlist {
		t.Errorf("plist = %q, want %q", got, wantPlist)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for path, mode := range map[string]os.FileMode{p: 0o644, filepath.Join(root, "Library", "Logs", "Coffer"): 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %v", path, err, mode)
		}
	}
}

func TestLaunchdInstallNotRoot(t *testing.T) {
	f := &fakeRunner{}
	err := (&Launchd{Root: t.TempDir(), Run: f.run, Geteuid: asNobody}).Install(context.Background(), Config{Executable: "/usr/local/bin/coffer"})
	if !errors.Is(err, ErrNotPrivileged) || !strings.Contains(err.Error(), "sudo coffer service install") {
		t.Errorf("err = %v, want a not-root error saying to use sudo", err)
	}
	if len(f.calls) > 0 {
		t.Errorf("ran %q without root", f.calls)
	}
}

func TestLaunchdUninstall(t *testing.T) {
	const bootout, print = "launchctl bootout system/io.coffer.agent", "launchctl print system/io.coffer.agent"
	tests := []struct {
		name      string
		installed bool
		replies   map[string]reply
		wantErr   bool
		wantCalls []string
		wantFile  bool
	}{
		{name: "loaded", installed: true, wantCalls: []string{bootout}},
		{
			name: "installed, not loaded", installed: true,
			replies:   map[string]reply{bootout: {err: errExit}, print: {err: errExit}},
			wantCalls: []string{bootout, print},
		},
		{
			name: "won't stop", installed: true,
			replies:   map[string]reply{bootout: {err: errExit}},
			wantErr:   true,
			wantCalls: []string{bootout, print},
			wantFile:  true,
		},
		{name: "not installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, "Library", "LaunchDaemons", "io.coffer.agent.plist")
			if tt.installed {
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, nil, 0o644)
			}
			f := &fakeRunner{replies: tt.replies}
			err := (&Launchd{Root: root, Run: f.run, Geteuid: asRoot}).Uninstall(context.Background(), "coffer")
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(f.calls, tt.wantCalls) {
				t.Errorf("commands = %q, want %q", f.calls, tt.wantCalls)
			}
			if _, err := os.Stat(p); (err == nil) != tt.wantFile {
				t.Errorf("plist exists = %v, want %v", err == nil, tt.wantFile)
			}
		})
	}
}

func TestLaunchdStatus(t *testing.T) {
	const printed = `system/io.coffer.agent = {
	active count = 1
	path = /Library/LaunchDaemons/io.coffer.agent.plist
	state = running

	program = /usr/local/bin/coffer
	pid = 4242
	endpoints = {
		state = active
	}
}`
	const print = "launchctl print system/io.coffer.agent"
	tests := []struct {
		name      string
		installed bool
		replies   map[string]reply
		want      Status
	}{
		{name: "not installed", want: Status{Detail: "not installed; install with `sudo coffer service install`"}},
		{name: "running", installed: true, replies: map[string]reply{print: {out: printed}}, want: Status{Installed: true, Running: true, Detail: "loaded, running, pid 4242"}},
		{
			name: "waiting", installed: true,
			replies: map[string]reply{print: {out: "system/io.coffer.agent = {\n\tstate = not running\n}\n"}},
			want:    Status{Installed: true, Detail: "loaded, not running"},
		},
		{
			name: "not loaded", installed: true, replies: map[string]reply{print: {err: errExit}},
			want: Status{Installed: true, Detail: "installed but not loaded; reinstall with `sudo coffer service install`"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.installed {
				p := filepath.Join(root, "Library", "LaunchDaemons", "io.coffer.agent.plist")
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, nil, 0o644)
			}
			f := &fakeRunner{replies: tt.replies}
			got, err := (&Launchd{Root: root, Run: f.run, Geteuid: asNobody}).Status(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("status = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNewIsThePlatformsManager(t *testing.T) {
	want := map[string]string{"linux": "*service.Systemd", "darwin": "*service.Launchd", "windows": "service.windowsManager"}[runtime.GOOS]
	if want == "" {
		want = "service.unsupported"
	}
	if got := fmt.Sprintf("%T", New()); got != want {
		t.Errorf("New() is %s, want %s", got, want)
	}
}

func TestRunAsWindowsServiceOutsideTheServiceManager(t *testing.T) {
	// go test is never started by the service control manager.
	called := false
	isService, err := RunAsWindowsService("coffer", func(context.Context) error { called = true; return nil })
	if isService || err != nil || called {
		t.Errorf("RunAsWindowsService = %v, %v (run called: %v), want false, nil and no call", isService, err, called)
	}
}

func TestExecRunner(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	out, err := ExecRunner(context.Background(), "sh", "-c", "echo inactive; echo oops >&2; exit 3")
	if string(out) != "inactive\n" {
		t.Errorf("stdout = %q, want it even on failure", out)
	}
	if err == nil || !strings.Contains(err.Error(), "oops") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("err = %v, want the exit status and stderr", err)
	}
}
