package wire

import (
	"encoding/json"
	"time"
)

// Approval statuses. A request is pending until a Backup Security Admin
// decides it or its time limit passes; an approved one is executed at once
// and ends executed or failed.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved" // decided, being executed; if the control plane stopped meanwhile, the monitor marks it failed (code interrupted) after 15 minutes: it never runs twice
	ApprovalExecuted = "executed"
	ApprovalFailed   = "failed" // approved, but the operation was refused when it ran (the machine changed meanwhile, say)
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired"
)

// ApprovalHeader names the approval request an answer created (202).
const ApprovalHeader = "X-Coffer-Approval"

// ReasonHeader carries why the requester asks for an operation that needs
// multi-user authorization; the request stores it for the approver.
const ReasonHeader = "X-Coffer-Reason"

// Approval is a request for an operation that needs a Backup Security
// Admin's approval while a vault has multi-user authorization on: who
// asked, what (the exact API request, run as it was sent once approved)
// and why.
type Approval struct {
	ID          string          `json:"id"`
	VaultID     string          `json:"vaultId"`
	Operation   string          `json:"operation"` // in words: "delete a recovery point of pc-01"
	Method      string          `json:"method"`
	Path        string          `json:"path"` // under /api/v1
	Body        json.RawMessage `json:"body,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	RequestedBy string          `json:"requestedBy"`
	RequestedAt time.Time       `json:"requestedAt"`
	ExpiresAt   time.Time       `json:"expiresAt"`
	Status      string          `json:"status"`
	DecidedBy   string          `json:"decidedBy,omitempty"`
	DecidedAt   *time.Time      `json:"decidedAt,omitempty"`
	Note        string          `json:"note,omitempty"` // the approver's words
	// Result is the answer the operation got when it ran.
	Result *ApprovalResult `json:"result,omitempty"`
}

// ApprovalResult is what running an approved operation answered.
type ApprovalResult struct {
	Status  int    `json:"status"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// ApprovalDecision is the optional body of approve and reject.
type ApprovalDecision struct {
	Note string `json:"note,omitempty"`
}
