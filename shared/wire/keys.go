package wire

import "time"

// DeletedKey is a key file retired by a passphrase change, kept in soft
// delete until PurgeAfter. Undeleting it makes its passphrase work again.
type DeletedKey struct {
	KeyID      string    `json:"keyId"`
	ReplacedBy string    `json:"replacedBy,omitempty"` // the key file recorded as its replacement
	Reason     string    `json:"reason"`
	DeletedAt  time.Time `json:"deletedAt"`
	PurgeAfter time.Time `json:"purgeAfter"`
	Size       int64     `json:"size"`
}
