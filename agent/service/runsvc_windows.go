package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
)

// RunAsWindowsService runs run under the service control manager when the
// process was started as a Windows service, cancelling its context on Stop
// or Shutdown, and returns true with run's error. Otherwise it returns
// false at once and the caller runs in the console.
func RunAsWindowsService(name string, run func(ctx context.Context) error) (bool, error) {
	isService, err := svc.IsWindowsService()
	if err != nil {
		return false, fmt.Errorf("checking whether coffer runs as a Windows service: %w", err)
	}
	// IsWindowsService also wants the parent in session 0, which wine 8
	// doesn't give services.exe (session 1). A parent named services.exe
	// elsewhere gets a try: if no service manager answers, coffer runs in
	// the console as before.
	maybe := !isService && parentIsServicesExe()
	if !isService && !maybe {
		return false, nil
	}
	h := &svcHandler{run: run}
	if err := svc.Run(name, h); err != nil {
		if maybe && errors.Is(err, windows.ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
			return false, nil
		}
		return true, errors.Join(fmt.Errorf("running as Windows service %s: %w", name, err), h.err)
	}
	return true, h.err
}

// parentIsServicesExe says whether the parent process is named
// services.exe, in any session.
func parentIsServicesExe() bool {
	var cur windows.PROCESS_BASIC_INFORMATION
	n := uint32(unsafe.Sizeof(cur))
	if windows.NtQueryInformationProcess(windows.CurrentProcess(), windows.ProcessBasicInformation, unsafe.Pointer(&cur), n, &n) != nil {
		return false
	}
	buf := make([]byte, 256<<10)
	for {
		n = uint32(len(buf))
		err := windows.NtQuerySystemInformation(windows.SystemProcessInformation, unsafe.Pointer(&buf[0]), n, &n)
		if err == nil {
			break
		}
		if err != windows.STATUS_INFO_LENGTH_MISMATCH || len(buf) >= 64<<20 {
			return false
		}
		buf = make([]byte, max(int(n), 2*len(buf)))
	}
	for off := uintptr(0); ; {
		p := (*windows.SYSTEM_PROCESS_INFORMATION)(unsafe.Pointer(&buf[off]))
		if p.UniqueProcessID == cur.InheritedFromUniqueProcessId {
			return strings.EqualFold(p.ImageName.String(), "services.exe")
		}
		if p.NextEntryOffset == 0 {
			return false
		}
		off += uintptr(p.NextEntryOffset)
	}
}

type svcHandler struct {
	run func(ctx context.Context) error
	err error
}

// stopWaitHint tells the service control manager how long stopping may take
// before it considers us hung.
const stopWaitHint = 30_000 // ms

func (h *svcHandler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			h.err = err
			status <- svc.Status{State: svc.StopPending}
			// Exiting with an error on our own is a failure, which makes the
			// service's recovery actions restart us; a requested stop isn't.
			if err != nil && ctx.Err() == nil {
				return true, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending, WaitHint: stopWaitHint}
				cancel()
			}
		}
	}
}
