package service

import (
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// What `coffer service install` asks of the Windows service control
// manager, checked on every OS (manager_windows.go applies it; the Windows
// lane installs it under wine).
func TestWindowsDefinition(t *testing.T) {
	def, err := WindowsDefinition(Config{
		Executable: `C:\Program Files\Coffer\coffer.exe`,
		ConfigDir:  `C:\ProgramData\Coffer`,
		LogDir:     `D:/logs/coffer`,
		Env:        map[string]string{"HTTPS_PROXY": "http://proxy:3128", "COFFER_KEYVAULT_EMULATOR": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := WindowsService{
		Name: "coffer", DisplayName: "Coffer backup agent",
		Description: "Backs up this computer's files to Azure on schedule and restores them (coffer run).",
		Executable:  `C:\Program Files\Coffer\coffer.exe`, Args: []string{"run"},
		Account: "LocalSystem", DelayedStart: true,
		Restarts: 3, RestartDelay: 30 * time.Second, ResetPeriod: 24 * time.Hour,
		// Sorted: reinstalling writes the same value.
		Environment: []string{
			`COFFER_CONFIG_DIR=C:\ProgramData\Coffer`,
			"COFFER_KEYVAULT_EMULATOR=1",
			"COFFER_LOG_DIR=D:/logs/coffer",
			"HTTPS_PROXY=http://proxy:3128",
		},
	}
	if !reflect.DeepEqual(def, want) {
		t.Errorf("WindowsDefinition =\n%+v\nwant\n%+v", def, want)
	}

	// Given arguments and name are kept; no folders and no env mean no
	// Environment value at all (install removes an old one).
	def, err = WindowsDefinition(Config{Name: "coffer-test", Executable: `\\server\share\coffer.exe`, Args: []string{"run", "--verbose"}})
	if err != nil {
		t.Fatal(err)
	}
	if def.Name != "coffer-test" || !slices.Equal(def.Args, []string{"run", "--verbose"}) || def.Environment != nil {
		t.Errorf("WindowsDefinition = %+v", def)
	}
}

func TestWindowsDefinitionRejected(t *testing.T) {
	for _, tt := range []struct {
		name    string
		c       Config
		wantErr string
	}{
		{"Unix executable path", Config{Executable: "/usr/bin/coffer"}, `relative: pass its absolute path (for example "C:\\Program Files\\Coffer\\coffer.exe")`},
		{"relative to the drive's current folder", Config{Executable: `C:coffer.exe`}, "relative"},
		{"the current drive's root", Config{Executable: `\Coffer\coffer.exe`}, "relative"},
		{"bare name", Config{Executable: "coffer.exe"}, "relative"},
		{"relative config folder", Config{Executable: `C:\coffer.exe`, ConfigDir: `Coffer`}, "config folder"},
		{"Unix log folder", Config{Executable: `C:\coffer.exe`, LogDir: "/var/log/coffer"}, "log folder"},
		{"newline in an argument", Config{Executable: `C:\coffer.exe`, Args: []string{"run\r\n"}}, "control character"},
		{"name with a backslash", Config{Name: `..\Spooler`, Executable: `C:\coffer.exe`}, "not valid"},
		{"env contradicts the config folder", Config{Executable: `C:\coffer.exe`, ConfigDir: `C:\a`, Env: map[string]string{EnvConfigDir: `C:\b`}}, "one or the other"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := WindowsDefinition(tt.c); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

// windowsIsAbs agrees with filepath.IsAbs where that is Windows' own; the
// table holds on every OS.
func TestWindowsIsAbs(t *testing.T) {
	for p, want := range map[string]bool{
		`C:\`: true, `c:/x`: true, `C:\Program Files\Coffer\coffer.exe`: true,
		`\\server\share\x`: true, `//server/share/x`: true, `\\?\C:\x`: true, `\\.\pipe\x`: true,
		`C:`: false, `C:x`: false, `\x`: false, `/x`: false, `x`: false, `.\x`: false, ``: false, `\\`: false, `\\\x`: false,
	} {
		if got := windowsIsAbs(p); got != want {
			t.Errorf("windowsIsAbs(%q) = %v, want %v", p, got, want)
		}
		if runtime.GOOS == "windows" && p != `\\` && p != `\\\x` {
			if got := filepath.IsAbs(p); got != want {
				t.Errorf("filepath.IsAbs(%q) = %v, but windowsIsAbs says %v", p, got, want)
			}
		}
	}
}
