package azureblob

import (
	"errors"
	"net"
	"net/http"
	"slices"
)

// sdkShouldRetry is the SDK's per-request retry decision, as its default
// (errors, and HTTP 408, 429, 500, 502, 503, 504), except for a connection
// that could not be made at all. Coffer always wraps a Backend in the
// storage retry wrapper (shared/storage/retry), which retries that with its
// own backoff; the SDK retrying it too multiplied the two, and an
// unreachable storage stayed silent for 53 s before the first error.
func sdkShouldRetry(resp *http.Response, err error) bool {
	if err != nil {
		return !connectFailed(err)
	}
	return slices.Contains([]int{http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}, resp.StatusCode)
}

// connectFailed reports whether err is a failure to reach the server: its
// name did not resolve or the connection was refused or timed out.
func connectFailed(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
