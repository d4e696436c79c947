package wire

import "time"

// UsageSample is a machine's storage on one day: its container as the
// control plane's MonitorBackups timer measured it, once a day
// (GET /vaults/{v}/machines/{m}/usage).
type UsageSample struct {
	Day     string    `json:"day"` // YYYY-MM-DD, UTC
	At      time.Time `json:"at"`  // when it was measured
	Bytes   int64     `json:"bytes"`
	Objects int       `json:"objects"`
	Packs   int       `json:"packs"`
}

// MaxUsageDays is the longest history GET .../usage answers, and how long
// the control plane keeps each sample.
const MaxUsageDays = 366
