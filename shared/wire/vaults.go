package wire

import "time"

// Vault is a group of machines with one set of alert settings and security
// features, like a Recovery Services vault.
type Vault struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	AlertRecipients  []string  `json:"alertRecipients"`
	AlertDigest      bool      `json:"alertDigest"` // one email an hour instead of one per alert
	SecurityFeatures bool      `json:"securityFeatures"`
	MultiUserAuth    bool      `json:"multiUserAuth"` // operations that need a PIN need a Backup Security Admin's approval instead
	CreatedAt        time.Time `json:"createdAt"`
}

// NewVault creates a vault. Security features and multi-user
// authorization are on unless turned off.
type NewVault struct {
	Name             string   `json:"name"`
	AlertRecipients  []string `json:"alertRecipients,omitempty"`
	AlertDigest      bool     `json:"alertDigest,omitempty"`
	SecurityFeatures *bool    `json:"securityFeatures,omitempty"`
	MultiUserAuth    *bool    `json:"multiUserAuth,omitempty"`
}

// VaultUpdate changes only the fields it sets. Turning security features
// off needs a PIN (an approval with multi-user authorization on); turning
// multi-user authorization off needs an approval.
type VaultUpdate struct {
	AlertRecipients  *[]string `json:"alertRecipients,omitempty"`
	AlertDigest      *bool     `json:"alertDigest,omitempty"`
	SecurityFeatures *bool     `json:"securityFeatures,omitempty"`
	MultiUserAuth    *bool     `json:"multiUserAuth,omitempty"`
}

// CredentialsVersion is the format of the vault credentials file.
const CredentialsVersion = 1

// Credentials is the vault credentials file an admin downloads and an agent
// registers with. Only the newest file of a vault is valid, for 48 hours.
type Credentials struct {
	Version         int       `json:"version"`
	ControlPlaneURL string    `json:"controlPlaneUrl"`
	VaultID         string    `json:"vaultId"`
	VaultName       string    `json:"vaultName"`
	CredentialID    string    `json:"credentialId"`
	Secret          string    `json:"secret"`
	KeyVaultURL     string    `json:"keyVaultUrl"`
	BlobEndpoint    string    `json:"blobEndpoint"`
	TenantID        string    `json:"tenantId,omitempty"`
	ExpiresAt       time.Time `json:"expiresAt"`
}

// Register is what an agent sends once, with the credentials file's secret
// and a public key it generated. The private key never leaves the machine.
type Register struct {
	VaultID      string `json:"vaultId"`
	CredentialID string `json:"credentialId"`
	Secret       string `json:"secret"`
	MachineName  string `json:"machineName"`
	PublicKey    string `json:"publicKey"` // base64 Ed25519
	OS           string `json:"os,omitempty"`
	AgentVersion string `json:"agentVersion,omitempty"`
	// KeyVaultPrincipalID is the object ID of the identity the machine
	// signs in to Key Vault as; the control plane assigns it the machine
	// passphrase role on this machine's secret. Empty: an admin does.
	KeyVaultPrincipalID string `json:"keyVaultPrincipalId,omitempty"`
}

// Registration is the control plane's answer to Register.
type Registration struct {
	MachineID    string `json:"machineId"`
	MachineName  string `json:"machineName"`
	VaultID      string `json:"vaultId"`
	Container    string `json:"container"`
	BlobEndpoint string `json:"blobEndpoint"`
	KeyVaultURL  string `json:"keyVaultUrl"`
	SecretName   string `json:"secretName"` // the machine's passphrase secret in Key Vault
}

// Machine states.
const (
	MachineProtected = "protected"
	MachineStopped   = "stopped" // protection stopped, data retained
	MachineDeleted   = "deleted" // data soft-deleted; purged at PurgeAfter
)

// Machine is a registered agent and its backup item.
type Machine struct {
	ID           string     `json:"id"`
	VaultID      string     `json:"vaultId"`
	Name         string     `json:"name"`
	OS           string     `json:"os,omitempty"`
	AgentVersion string     `json:"agentVersion,omitempty"`
	Container    string     `json:"container"`
	Policy       string     `json:"policy,omitempty"`
	State        string     `json:"state"`
	RegisteredAt time.Time  `json:"registeredAt"`
	StoppedAt    *time.Time `json:"stoppedAt,omitempty"`
	DeletedAt    *time.Time `json:"deletedAt,omitempty"`
	PurgeAfter   *time.Time `json:"purgeAfter,omitempty"`
	Item         *Item      `json:"item,omitempty"`
}

// Item is the backup item summary of a machine.
type Item struct {
	LastBackupStatus string     `json:"lastBackupStatus,omitempty"`
	LastBackupAt     *time.Time `json:"lastBackupAt,omitempty"`
	LatestPoint      *time.Time `json:"latestPoint,omitempty"`
	OldestPoint      *time.Time `json:"oldestPoint,omitempty"`
	Points           int        `json:"points"`
	StorageBytes     int64      `json:"storageBytes"`
	// NextRun is the next scheduled backup of a protected machine by its
	// policy; only GET .../machines/{m} sets it.
	NextRun *time.Time `json:"nextRun,omitempty"`
}

// StopProtection stops a machine's backups, keeping or soft-deleting its data.
type StopProtection struct {
	DeleteData bool `json:"deleteData"`
}

// AssignPolicy sets the policy a machine follows. An assignment that
// shortens the machine's effective retention needs a security PIN.
type AssignPolicy struct {
	Policy string `json:"policy"`
	PIN    string `json:"pin,omitempty"`
}

// Point states.
const (
	PointActive  = "active"
	PointDeleted = "deleted" // soft-deleted; purged at PurgeAfter
)

// Point is a recovery point as the control plane knows it. Its time is the
// server's, so a compromised agent cannot push real points out of retention.
type Point struct {
	ID         string     `json:"id"`
	MachineID  string     `json:"machineId"`
	Time       time.Time  `json:"time"`
	JobID      string     `json:"jobId,omitempty"`
	State      string     `json:"state"`
	DeletedAt  *time.Time `json:"deletedAt,omitempty"`
	PurgeAfter *time.Time `json:"purgeAfter,omitempty"`
	// RetainUntil keeps the point past its policy's retention, as MARS's
	// on-demand backups do.
	RetainUntil *time.Time `json:"retainUntil,omitempty"`
	// Suspicious says why the ransomware alarm fired on this point's
	// backup: it may hold encrypted files, so restore an earlier one.
	Suspicious string `json:"suspicious,omitempty"`
	// FalsePositive says who acknowledged that alarm as a false positive.
	FalsePositive string `json:"falsePositive,omitempty"`
}

// PointUpdate changes a point's RetainUntil: a time, or null for none (the
// policy alone decides). Shortening it needs a PIN.
type PointUpdate struct {
	RetainUntil *time.Time `json:"retainUntil"`
}

// NewPoint registers a completed point; its refs/<id> must be in storage.
type NewPoint struct {
	ID          string     `json:"id"`
	JobID       string     `json:"jobId,omitempty"`
	RetainUntil *time.Time `json:"retainUntil,omitempty"`
}

// PIN is a security PIN: valid for 5 minutes, usable once.
type PIN struct {
	PIN       string    `json:"pin"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// PINHeader carries a PIN on the operations that need one.
const PINHeader = "X-Coffer-PIN"

// SAS is a grant for a machine's own container.
type SAS struct {
	ContainerURL string    `json:"containerUrl"`
	SAS          string    `json:"sas"` // query string, without '?'
	ExpiresOn    time.Time `json:"expiresOn"`
}

// PolicyDoc is a named policy of a vault, as stored and served. Policy is
// shared/policy.Policy; it is kept raw here because that package builds on
// this one.
type PolicyDoc struct {
	Name      string    `json:"name"`
	Policy    RawJSON   `json:"policy"`
	UpdatedAt time.Time `json:"updatedAt"`
	ETag      string    `json:"etag"`
}

// RetireKey names the key file a passphrase change replaced, for the
// control plane to retire so the old passphrase stops working, and the key
// file the new passphrase opens: the control plane soft-deletes Key only
// after it has checked that Replacement exists and is a key file.
type RetireKey struct {
	Key         string `json:"key"`
	Replacement string `json:"replacement"`
}

// RestoreGrant lets one machine restore another's data, for a day. An
// Operator grants it; the target machine then asks for read-only tokens.
type RestoreGrant struct {
	Source string `json:"source"` // the machine whose data is restored (ID)
}

// RestoreAccess is what the target machine gets: read-only storage access
// to the source's container and where the source's passphrase is escrowed.
type RestoreAccess struct {
	SourceMachine string    `json:"sourceMachine"`
	SourceName    string    `json:"sourceName"`
	ContainerURL  string    `json:"containerUrl"`
	SAS           string    `json:"sas"`
	ExpiresOn     time.Time `json:"expiresOn"`
	SecretName    string    `json:"secretName"`
	KeyVaultURL   string    `json:"keyVaultUrl"`
}
