package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/coffer-backup/coffer/agent/logging"
)

// New returns the Windows service control manager's manager.
func New() Manager { return windowsManager{} }

type windowsManager struct{}

// stopTimeout bounds the wait for the service to stop before deleting it.
const stopTimeout = 30 * time.Second

func notAdmin(verb string) error {
	return fmt.Errorf("%w: %s the service needs Administrator rights; run coffer service %s from an elevated prompt (Run as administrator)", ErrNotPrivileged, verbing(verb), verb)
}

func connect(verb string) (*mgr.Mgr, error) {
	m, err := mgr.Connect()
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return nil, notAdmin(verb)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to the service control manager: %w", err)
	}
	return m, nil
}

// Install creates the service (or updates it) as WindowsDefinition says:
// LocalSystem, a delayed automatic start, a restart 30 s after a failure.
// It also registers the Event Log source and starts the service.
func (windowsManager) Install(ctx context.Context, c Config) error {
	def, err := WindowsDefinition(c)
	if err != nil {
		return fmt.Errorf("installing the service: %w", err)
	}
	m, err := connect("install")
	if err != nil {
		return err
	}
	defer m.Disconnect()

	s, err := m.OpenService(def.Name)
	switch {
	case err == nil:
		err = updateService(s, def)
	case errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST):
		// The delayed start is asked for separately (setDelayedStart), so
		// that a service manager without it still gets the service.
		s, err = m.CreateService(def.Name, def.Executable, mgr.Config{
			StartType:    mgr.StartAutomatic,
			ErrorControl: mgr.ErrorNormal,
			DisplayName:  def.DisplayName,
			Description:  def.Description,
			// No ServiceStartName: CreateService's default is LocalSystem,
			// def.Account.
		}, def.Args...)
	}
	if err != nil {
		return fmt.Errorf("creating service %s: %w", def.Name, err)
	}
	defer s.Close()
	if def.DelayedStart {
		if err := setDelayedStart(s); err != nil {
			return err
		}
	}

	actions := make([]mgr.RecoveryAction, def.Restarts)
	for i := range actions {
		actions[i] = mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: def.RestartDelay}
	}
	if err := s.SetRecoveryActions(actions, uint32(def.ResetPeriod/time.Second)); err != nil {
		return fmt.Errorf("setting the service's restart on failure: %w", err)
	}
	// Also restart when coffer exits with an error rather than crashing.
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); notSupported(err) {
		slog.Warn("this service control manager cannot restart the service when coffer exits with an error (only after a crash); recovery actions stay as they are", "service", def.Name, "err", err)
	} else if err != nil {
		return fmt.Errorf("setting the service's restart on failure: %w", err)
	}
	if err := setServiceEnv(def.Name, def.Environment); err != nil {
		return fmt.Errorf("setting the service's environment: %w", err)
	}
	if err := installEventSource(); err != nil {
		return fmt.Errorf("registering the Event Log source %q: %w", logging.EventSource, err)
	}
	st, err := s.Query()
	if err != nil {
		return fmt.Errorf("querying service %s: %w", def.Name, err)
	}
	if st.State == svc.Stopped {
		if err := s.Start(); err != nil && !errors.Is(err, windows.ERROR_SERVICE_ALREADY_RUNNING) {
			return fmt.Errorf("starting service %s: %w; see the Application log in Event Viewer", def.Name, err)
		}
	}
	return nil
}

// delayedStartWarned makes the warning about a missing delayed start one
// per process.
var delayedStartWarned sync.Once

// setDelayedStart asks for a delayed automatic start: the network and
// Azure's identity endpoints are more likely up, and boot isn't slowed. A
// service manager that doesn't know the setting (wine 8, Windows builds
// before Vista's) keeps the plain automatic start, with a warning.
func setDelayedStart(s *mgr.Service) error {
	d := windows.SERVICE_DELAYED_AUTO_START_INFO{IsDelayedAutoStartUp: 1}
	err := windows.ChangeServiceConfig2(s.Handle, windows.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, (*byte)(unsafe.Pointer(&d)))
	if notSupported(err) {
		delayedStartWarned.Do(func() {
			slog.Warn("this service control manager has no delayed automatic start; the service starts at boot with the other automatic services", "service", s.Name, "err", err)
		})
		return nil
	}
	if err != nil {
		return fmt.Errorf("setting service %s to a delayed automatic start: %w; set it in services.msc (Startup type: Automatic (Delayed Start)) or retry from an elevated prompt", s.Name, err)
	}
	return nil
}

// notSupported says whether err is a service manager's way of saying it
// doesn't implement a ChangeServiceConfig2 level.
func notSupported(err error) bool {
	return errors.Is(err, windows.ERROR_INVALID_LEVEL) || errors.Is(err, windows.ERROR_NOT_SUPPORTED) ||
		errors.Is(err, windows.ERROR_CALL_NOT_IMPLEMENTED)
}

// updateService points an existing service at the new command line and
// settings. It calls ChangeServiceConfig itself rather than
// mgr.Service.UpdateConfig, which also reads and writes the delayed start
// and fails on a service manager without it.
func updateService(s *mgr.Service, def WindowsService) error {
	line := windows.EscapeArg(def.Executable)
	for _, a := range def.Args {
		line += " " + windows.EscapeArg(a)
	}
	err := windows.ChangeServiceConfig(s.Handle, windows.SERVICE_NO_CHANGE, mgr.StartAutomatic, mgr.ErrorNormal,
		utf16(line), nil, nil, nil, utf16(def.Account), nil, utf16(def.DisplayName))
	if err == nil {
		d := windows.SERVICE_DESCRIPTION{Description: utf16(def.Description)}
		err = windows.ChangeServiceConfig2(s.Handle, windows.SERVICE_CONFIG_DESCRIPTION, (*byte)(unsafe.Pointer(&d)))
	}
	if err != nil {
		s.Close()
		return err
	}
	return nil
}

// utf16 is windows.StringToUTF16Ptr for strings known to hold no NUL.
func utf16(s string) *uint16 {
	p, err := windows.UTF16PtrFromString(s)
	if err != nil {
		panic(err)
	}
	return p
}

// setServiceEnv stores the environment (KEY=VALUE lines) where the service
// control manager reads it when starting the service: the service key's
// Environment value. None removes the value.
func setServiceEnv(name string, env []string) error {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SYSTEM\CurrentControlSet\Services\`+name, registry.SET_VALUE)
	if err != nil {
		return err
	}
	defer k.Close()
	if len(env) == 0 {
		if err := k.DeleteValue("Environment"); err != nil && !errors.Is(err, registry.ErrNotExist) {
			return err
		}
		return nil
	}
	return k.SetStringsValue("Environment", env)
}

const eventSourceKey = `SYSTEM\CurrentControlSet\Services\EventLog\Application\` + logging.EventSource

func installEventSource() error {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, eventSourceKey, registry.QUERY_VALUE)
	if err == nil {
		k.Close()
		return nil // already registered
	}
	if !errors.Is(err, registry.ErrNotExist) {
		return err
	}
	return eventlog.InstallAsEventCreate(logging.EventSource, eventlog.Error|eventlog.Warning|eventlog.Info)
}

// Uninstall stops the service, deletes it and removes the Event Log source.
func (windowsManager) Uninstall(ctx context.Context, name string) error {
	name = nameOrDefault(name)
	if err := checkName(name); err != nil {
		return err
	}
	m, err := connect("uninstall")
	if err != nil {
		return err
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil && !errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return fmt.Errorf("opening service %s: %w", name, err)
	}
	if err == nil {
		defer s.Close()
		if err := stopService(ctx, s); err != nil {
			return err
		}
		if err := s.Delete(); err != nil && !errors.Is(err, windows.ERROR_SERVICE_MARKED_FOR_DELETE) {
			return fmt.Errorf("deleting service %s: %w", name, err)
		}
	}
	// The source is shared by every Coffer service on the machine, but
	// messages from another still reach the log without it, only less tidily.
	if err := eventlog.Remove(logging.EventSource); err != nil && !errors.Is(err, registry.ErrNotExist) {
		return fmt.Errorf("removing the Event Log source %q: %w", logging.EventSource, err)
	}
	return nil
}

// stopService asks the service to stop and waits for it, so deleting it
// doesn't leave it marked for deletion while still running.
func stopService(ctx context.Context, s *mgr.Service) error {
	st, err := s.Control(svc.Stop)
	if err != nil && !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return fmt.Errorf("stopping service %s: %w", s.Name, err)
	}
	if err != nil {
		return nil
	}
	deadline := time.Now().Add(stopTimeout)
	for st.State != svc.Stopped {
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s didn't stop within %v; stop it in services.msc and retry", s.Name, stopTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		if st, err = s.Query(); err != nil {
			return fmt.Errorf("querying service %s: %w", s.Name, err)
		}
	}
	return nil
}

// Status needs no Administrator rights: it asks only to query.
func (windowsManager) Status(ctx context.Context, name string) (Status, error) {
	name = nameOrDefault(name)
	if err := checkName(name); err != nil {
		return Status{}, err
	}
	h, err := windows.OpenSCManager(nil, nil, windows.SC_MANAGER_CONNECT)
	if err != nil {
		return Status{}, fmt.Errorf("connecting to the service control manager: %w", err)
	}
	defer windows.CloseServiceHandle(h)
	namep, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return Status{}, err
	}
	sh, err := windows.OpenService(h, namep, windows.SERVICE_QUERY_STATUS|windows.SERVICE_QUERY_CONFIG)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return Status{Detail: "not installed; install with `coffer service install` from an elevated prompt"}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("opening service %s: %w", name, err)
	}
	s := &mgr.Service{Name: name, Handle: sh}
	defer s.Close()
	q, err := s.Query()
	if err != nil {
		return Status{Installed: true}, fmt.Errorf("querying service %s: %w", name, err)
	}
	detail := []string{stateName(q.State)}
	if q.ProcessId != 0 {
		detail = append(detail, fmt.Sprintf("pid %d", q.ProcessId))
	}
	if cfg, err := s.Config(); err == nil {
		detail = append(detail, startName(cfg))
	}
	return Status{Installed: true, Running: q.State == svc.Running, Detail: strings.Join(detail, ", ")}, nil
}

func stateName(s svc.State) string {
	switch s {
	case svc.Stopped:
		return "stopped"
	case svc.StartPending:
		return "starting"
	case svc.StopPending:
		return "stopping"
	case svc.Running:
		return "running"
	case svc.ContinuePending:
		return "resuming"
	case svc.PausePending:
		return "pausing"
	case svc.Paused:
		return "paused"
	}
	return fmt.Sprintf("state %d", s)
}

func startName(c mgr.Config) string {
	switch c.StartType {
	case mgr.StartAutomatic:
		if c.DelayedAutoStart {
			return "starts at boot (delayed)"
		}
		return "starts at boot"
	case mgr.StartManual:
		return "starts manually"
	case mgr.StartDisabled:
		return "disabled"
	}
	return fmt.Sprintf("start type %d", c.StartType)
}
