// Package wire holds the JSON types the agent and the control plane exchange
// over /api/v1, and the stable error codes a client can act on. Both sides
// import it, so a field renamed here is renamed everywhere.
package wire

import (
	"encoding/json"
	"fmt"
)

// Version is the path prefix of this API.
const Version = "/api/v1"

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Code    string      `json:"code"`              // stable, machine-readable; see the Code constants
	Message string      `json:"message"`           // what was wrong and how to fix it
	Details []Violation `json:"details,omitempty"` // one entry per broken rule, when there are several
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Violation names one broken rule of a request, such as a policy.
type Violation struct {
	Field   string `json:"field"`   // JSON path of the offending field, e.g. "schedule.times"
	Rule    string `json:"rule"`    // stable rule name, e.g. "schedule.times.max3"
	Message string `json:"message"` // the rule in plain words
}

// Stable error codes.
const (
	CodeBadRequest            = "bad_request"            // malformed JSON, unknown field, wrong type
	CodeTooLarge              = "too_large"              // body over the limit
	CodeValidation            = "validation_failed"      // a field breaks a rule; see Details
	CodeUnauthenticated       = "unauthenticated"        // no or bad credentials, token or signature
	CodeForbidden             = "forbidden"              // authenticated, but the role or machine may not do this
	CodeNotFound              = "not_found"              // no such vault, machine, job, point or alert
	CodeConflict              = "conflict"               // name taken, state does not allow it
	CodeCredentialsExpired    = "credentials_expired"    // vault credentials older than 48 hours
	CodeCredentialsSuperseded = "credentials_superseded" // a newer credentials file was generated
	CodeReplay                = "replayed_request"       // nonce already seen
	CodeStaleRequest          = "stale_request"          // signed timestamp too far from the server's clock
	CodePINRequired           = "pin_required"           // the operation needs a security PIN
	CodePINInvalid            = "pin_invalid"            // wrong, expired or already used PIN
	CodePINLocked             = "pin_locked"             // 429: too many wrong PINs for the vault; Retry-After says when to try again
	CodeApprovalExpired       = "approval_expired"       // the approval request passed its time limit; ask again
	CodeApprovalDecided       = "approval_decided"       // the approval request was already approved or rejected
	CodeJobFinished           = "job_finished"           // progress reported for a job that already ended
	CodePointIncomplete       = "point_incomplete"       // the point names packs that are not in storage
	CodeInterrupted           = "interrupted"            // an approved operation's run was cut off; check whether it took effect
	CodeInternal              = "internal"               // the server's fault; retry later
	CodeUnavailable           = "unavailable"            // a dependency is down; retry later
)

// RawJSON is a JSON value kept as it was received.
type RawJSON = json.RawMessage
