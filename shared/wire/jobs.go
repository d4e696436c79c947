package wire

import "time"

// Job types, as MARS names them.
const (
	JobBackup     = "backup"
	JobRestore    = "restore"
	JobRegister   = "register"
	JobConfigure  = "configure_backup"
	JobDisable    = "disable_backup"
	JobDeleteData = "delete_backup_data"
)

// Job statuses.
const (
	StatusInProgress            = "in_progress"
	StatusCompleted             = "completed"
	StatusCompletedWithWarnings = "completed_with_warnings"
	StatusFailed                = "failed"
	StatusCancelled             = "cancelled"
)

// Job is one unit of work on a machine.
type Job struct {
	ID          string     `json:"id"`
	VaultID     string     `json:"vaultId"`
	MachineID   string     `json:"machineId"`
	MachineName string     `json:"machineName,omitempty"`
	Type        string     `json:"type"`
	Status      string     `json:"status"`
	StartedAt   time.Time  `json:"startedAt"` // server time
	UpdatedAt   time.Time  `json:"updatedAt"` // server time of the last report
	EndedAt     *time.Time `json:"endedAt,omitempty"`
	Progress    Progress   `json:"progress"`
	// Skipped lists files the job could not include, with the reason.
	Skipped   []Skipped `json:"skipped,omitempty"`
	ErrorCode string    `json:"errorCode,omitempty"`
	Message   string    `json:"message,omitempty"`
	PointID   string    `json:"pointId,omitempty"` // the recovery point a backup produced
}

// Progress counts only grow; a report with a smaller count is merged, not
// applied backwards.
type Progress struct {
	FilesDone     int64 `json:"filesDone"`
	FilesTotal    int64 `json:"filesTotal"`
	BytesDone     int64 `json:"bytesDone"`
	BytesTotal    int64 `json:"bytesTotal"`
	BytesUploaded int64 `json:"bytesUploaded"`
}

// Skipped is one file a job left out.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// NewJob is what an agent sends to start a job.
type NewJob struct {
	Type string `json:"type"`
}

// JobReport is what an agent sends about a running job: progress, or the
// outcome when Status is not in_progress.
type JobReport struct {
	Status    string    `json:"status"`
	Progress  Progress  `json:"progress"`
	Skipped   []Skipped `json:"skipped,omitempty"`
	ErrorCode string    `json:"errorCode,omitempty"`
	Message   string    `json:"message,omitempty"`
	PointID   string    `json:"pointId,omitempty"`
}
