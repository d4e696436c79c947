package retry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/coffer-backup/coffer/shared/storage"
)

// IsTransient reports whether err may go away if the operation is tried
// again: network failures, HTTP 408, 429 and 5xx, and the operating
// system's errors for busy, interrupted or unreachable storage (a network
// share, a file another program holds open). Answers of the storage itself
// (not found, exists, permission, a bad name) and cancellation are final.
func IsTransient(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, storage.ErrNotFound),
		errors.Is(err, storage.ErrExists),
		errors.Is(err, storage.ErrPermission),
		errors.Is(err, storage.ErrInvalidName),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded):
		return false
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == http.StatusRequestTimeout ||
			re.StatusCode == http.StatusTooManyRequests ||
			re.StatusCode >= 500
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		// A name that does not exist will not start to; a server that did
		// not answer may.
		return !dns.IsNotFound
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	for _, e := range transientErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true // a connection refused, reset or cut
	}
	var ue *url.Error
	if errors.As(err, &ue) && errors.Is(err, io.EOF) {
		return true // the server closed the connection mid-request
	}
	// Not any net.Error: syscall.Errno is one, ENOSPC included.
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Errors shared by every system Coffer builds for.
var commonErrnos = []error{
	syscall.EAGAIN, syscall.EINTR, syscall.EBUSY, syscall.ETIMEDOUT,
	syscall.ECONNRESET, syscall.ECONNABORTED, syscall.ECONNREFUSED, syscall.EPIPE,
	syscall.ENETDOWN, syscall.ENETUNREACH, syscall.EHOSTUNREACH,
}

// Unreachable reports whether err is a failure to reach the storage at all:
// its host name did not resolve, or no connection could be made to it.
func Unreachable(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
