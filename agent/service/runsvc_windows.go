package service

import (
	"context"
	"errors"
	"fmt"

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
	if !isService {
		return false, nil
	}
	h := &svcHandler{run: run}
	if err := svc.Run(name, h); err != nil {
		return true, errors.Join(fmt.Errorf("running as Windows service %s: %w", name, err), h.err)
	}
	return true, h.err
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
