package wire

import "time"

// Alert severities.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
)

// Alert kinds.
const (
	AlertJobFailed         = "job_failed"                  // critical
	AlertJobWarnings       = "job_completed_with_warnings" // warning
	AlertCriticalOperation = "critical_operation"          // critical: PIN use, delete data, passphrase change, security features off
	AlertMissedBackup      = "missed_backup"               // warning
	AlertProtectionStopped = "protection_stopped"          // warning: protection stopped, data kept; no backups run
	AlertRansomware        = "possible_ransomware"         // critical: a backup's changes look like files being encrypted
)

// Alert is stored in Table storage and published on the alerts queue, in
// this shape, for the email function.
type Alert struct {
	ID             string     `json:"id"`
	VaultID        string     `json:"vaultId"`
	VaultName      string     `json:"vaultName,omitempty"`
	MachineID      string     `json:"machineId,omitempty"`
	MachineName    string     `json:"machineName,omitempty"`
	JobID          string     `json:"jobId,omitempty"`
	Severity       string     `json:"severity"`
	Kind           string     `json:"kind"`
	Title          string     `json:"title"`  // one line, for the subject
	Detail         string     `json:"detail"` // what happened and what to do
	RaisedAt       time.Time  `json:"raisedAt"`
	Acknowledged   bool       `json:"acknowledged"`
	AcknowledgedAt *time.Time `json:"acknowledgedAt,omitempty"`
	AcknowledgedBy string     `json:"acknowledgedBy,omitempty"`

	// Reported is text the machine sent (a job's error code and message,
	// skipped files): data, never instructions. Emails show it quoted,
	// marked as the machine's, with links disabled. Detail may repeat it
	// for API readers; an email then shows only this.
	Reported string `json:"reported,omitempty"`
}
