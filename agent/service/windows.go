package service

import "time"

// WindowsService is what `coffer service install` asks of the Windows
// service control manager. It is built on every OS, like SystemdUnit and
// LaunchdPlist, so its rules are tested everywhere; manager_windows.go
// applies it.
type WindowsService struct {
	Name        string
	DisplayName string
	Description string
	// Executable and Args make the service's command line.
	Executable string
	Args       []string
	// Account the service runs as: LocalSystem, which may read every file,
	// snapshot volumes and restore security descriptors.
	Account string
	// DelayedStart asks for an automatic start after the other automatic
	// services: the network and Azure's identity endpoints are more likely
	// up, and boot isn't slowed.
	DelayedStart bool
	// Restarts are the recovery actions after a failure, each after
	// RestartDelay; failures are forgotten after ResetPeriod.
	Restarts     int
	RestartDelay time.Duration
	ResetPeriod  time.Duration
	// Environment is the service key's Environment value (REG_MULTI_SZ):
	// KEY=VALUE, sorted, so reinstalling writes the same value. It carries
	// Config.ConfigDir and Config.LogDir as COFFER_CONFIG_DIR and
	// COFFER_LOG_DIR.
	Environment []string
}

// Settings of the Windows service.
const (
	windowsDisplayName = "Coffer backup agent"
	windowsDescription = "Backs up this computer's files to Azure on schedule and restores them (coffer run)."
	windowsAccount     = "LocalSystem"
	// windowsRestartDelay matches systemd's RestartSec=30.
	windowsRestartDelay = 30 * time.Second
	windowsResetPeriod  = 24 * time.Hour
)

// WindowsDefinition checks c with Windows' notion of an absolute path and
// returns the service to install.
func WindowsDefinition(c Config) (WindowsService, error) {
	c, err := c.normalize(windowsIsAbs)
	if err != nil {
		return WindowsService{}, err
	}
	var env []string
	for _, k := range sortedEnv(c.Env) {
		env = append(env, k+"="+c.Env[k])
	}
	return WindowsService{
		Name: c.Name, DisplayName: windowsDisplayName, Description: windowsDescription,
		Executable: c.Executable, Args: c.Args, Account: windowsAccount, DelayedStart: true,
		Restarts: 3, RestartDelay: windowsRestartDelay, ResetPeriod: windowsResetPeriod,
		Environment: env,
	}, nil
}

// windowsIsAbs is filepath.IsAbs as on Windows, on every OS: a drive and a
// separator (C:\ or C:/), or a UNC or device path (\\server\share,
// \\?\C:\). "C:x" (relative to the drive's current folder) and "\x" (the
// current drive's root) are not absolute: the service manager's current
// folder and drive are not the installer's.
func windowsIsAbs(p string) bool {
	switch {
	case len(p) >= 3 && isDriveLetter(p[0]) && p[1] == ':' && isWindowsSep(p[2]):
		return true
	case len(p) >= 3 && isWindowsSep(p[0]) && isWindowsSep(p[1]) && !isWindowsSep(p[2]):
		return true
	}
	return false
}

func isDriveLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }
func isWindowsSep(b byte) bool  { return b == '\\' || b == '/' }
