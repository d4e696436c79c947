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
	// Change is what a backup measured against its parent point, for the
	// ransomware alarm; nil for other jobs and for agents that do not send it.
	Change *ChangeCounters `json:"change,omitempty"`
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
	// Change goes with a backup's outcome.
	Change *ChangeCounters `json:"change,omitempty"`
}

// ChangeCounters is what a backup changed against its parent point, in
// counts only: no file name, extension or content leaves the machine. The
// control plane compares them with the machine's own history to spot
// ransomware (functions/ransomware). ParentFiles 0 means there was nothing
// to compare with (a first backup, or the parent's listing could not be
// read), and the other counters are then not comparisons.
type ChangeCounters struct {
	ParentFiles int64 `json:"parentFiles"` // files in the parent point
	Files       int64 `json:"files"`       // files in this point
	// Changed counts files at the same path whose content differs.
	Changed int64 `json:"changed"`
	// Renamed counts new files standing where a vanished file of the
	// parent was, under its name with an extension added or replaced
	// ("a.docx" → "a.docx.locked" or "a.locked"): how ransomware renames.
	Renamed int64 `json:"renamed"`
	// Incompressible counts changed or renamed files whose old content
	// compressed well and whose new content does not compress at all.
	Incompressible int64 `json:"incompressible"`
	// Overwritten counts changed or renamed files of several chunks whose
	// every chunk is new at the same size: rewritten whole, as encryption
	// does even to content that never compressed (media, archives).
	Overwritten int64 `json:"overwritten"`
	// NewExtension counts new files whose extension no file of their
	// folder had in the parent point; TopNewExtension is the largest
	// number of them sharing one extension.
	NewExtension    int64 `json:"newExtension"`
	TopNewExtension int64 `json:"topNewExtension"`
	// Deleted counts files of the parent point that are gone.
	Deleted int64 `json:"deleted"`
}
