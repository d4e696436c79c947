// Package config reads the control plane's settings. They come from app
// settings (environment variables) only, never from files in the
// repository: a connection string for each emulator locally, or an endpoint
// plus the managed identity in Azure.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Setting names. infra/ sets each of them; a test checks that it does.
const (
	Port                 = "FUNCTIONS_CUSTOMHANDLER_PORT"
	StorageConnection    = "COFFER_STORAGE_CONNECTION_STRING"
	StorageBlobEndpoint  = "COFFER_STORAGE_BLOB_ENDPOINT"
	StorageTableEndpoint = "COFFER_STORAGE_TABLE_ENDPOINT"
	ServiceBusConnection = "COFFER_SERVICEBUS_CONNECTION_STRING"
	ServiceBusNamespace  = "COFFER_SERVICEBUS__fullyQualifiedNamespace"
	AlertsQueue          = "COFFER_ALERTS_QUEUE"
	KeyVaultURL          = "COFFER_KEYVAULT_URL"
	KeyVaultResourceID   = "COFFER_KEYVAULT_RESOURCE_ID"
	KeyVaultMachineRole  = "COFFER_KEYVAULT_MACHINE_ROLE_ID"
	ARMEndpoint          = "COFFER_ARM_ENDPOINT"
	ARMToken             = "COFFER_ARM_TOKEN"
	PublicURL            = "COFFER_PUBLIC_URL"
	WebsiteHostname      = "WEBSITE_HOSTNAME"
	TenantID             = "AZURE_TENANT_ID"
	ClientID             = "AZURE_CLIENT_ID"
	AuthMode             = "COFFER_AUTH_MODE"
	WebsiteAuthEnabled   = "WEBSITE_AUTH_ENABLED"
	TokenContributor     = "COFFER_TOKEN_CONTRIBUTOR"
	TokenOperator        = "COFFER_TOKEN_OPERATOR"
	TokenReader          = "COFFER_TOKEN_READER"
	TokenSecurityAdmin   = "COFFER_TOKEN_SECURITY_ADMIN"
	ApprovalTTL          = "COFFER_APPROVAL_TTL"
	SMTPHost             = "COFFER_SMTP_HOST"
	SMTPPort             = "COFFER_SMTP_PORT"
	SMTPSecurity         = "COFFER_SMTP_SECURITY"
	SMTPUsername         = "COFFER_SMTP_USERNAME"
	SMTPPassword         = "COFFER_SMTP_PASSWORD"
	SMTPFrom             = "COFFER_SMTP_FROM"
	StaleJobAfter        = "COFFER_STALE_JOB_AFTER"
	SoftDeleteDays       = "COFFER_SOFT_DELETE_DAYS"
	DevClock             = "COFFER_DEV_CLOCK"
)

// Config is the validated settings.
type Config struct {
	Port string

	// Storage: a connection string (emulator, account key), or endpoints
	// reached with the managed identity.
	StorageConnection string
	BlobEndpoint      string
	TableEndpoint     string
	StorageAccount    string
	StorageKey        string

	ServiceBusConnection string
	ServiceBusNamespace  string
	AlertsQueue          string

	KeyVaultURL string
	// KeyVaultResourceID and KeyVaultMachineRoleID, both set, make the
	// control plane assign each registering machine's Key Vault identity
	// the machine passphrase role on that machine's secret.
	KeyVaultResourceID    string
	KeyVaultMachineRoleID string
	// ARM is where those assignments go: Azure Resource Manager with the
	// managed identity, or locally the Key Vault emulator, with a static
	// token and the CA in SSL_CERT_FILE.
	ARM       struct{ Endpoint, Token, CAFile string }
	PublicURL string
	TenantID  string
	ClientID  string

	AuthMode string // "tokens" or "appservice"
	Tokens   struct{ Contributor, Operator, Reader, SecurityAdmin string }

	SMTP struct {
		Host, Security, Username, Password, From string
		Port                                     int
	}

	StaleJobAfter time.Duration
	SoftDelete    time.Duration
	DevClock      bool
	// ApprovalTTL is how long a multi-user authorization request can be
	// approved.
	ApprovalTTL time.Duration
}

// setting is one name and its value, for checks over several settings in
// a fixed order (a map's order would shuffle the error text between runs).
type setting struct{ name, value string }

// Load reads and checks every setting, naming each one that is wrong, in
// the same order every time: operators diff logs and tests compare text.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("setting %s: "+format, append([]any{name}, args...)...))
	}
	c.Port = getenv(Port)

	c.StorageConnection = getenv(StorageConnection)
	if c.StorageConnection != "" {
		cs, err := ParseStorageConnection(c.StorageConnection)
		if err != nil {
			bad(StorageConnection, "%v", err)
		}
		c.BlobEndpoint, c.TableEndpoint, c.StorageAccount, c.StorageKey = cs.Blob, cs.Table, cs.Account, cs.Key
	} else {
		c.BlobEndpoint, c.TableEndpoint = getenv(StorageBlobEndpoint), getenv(StorageTableEndpoint)
		if c.BlobEndpoint == "" || c.TableEndpoint == "" {
			bad(StorageConnection, "is required, or set both %s and %s for the managed identity", StorageBlobEndpoint, StorageTableEndpoint)
		}
		for _, s := range []setting{{StorageBlobEndpoint, c.BlobEndpoint}, {StorageTableEndpoint, c.TableEndpoint}} {
			if s.value != "" && !strings.HasPrefix(s.value, "https://") {
				bad(s.name, "must be an https:// endpoint, got %q", s.value)
			}
		}
	}

	c.ServiceBusConnection, c.ServiceBusNamespace = getenv(ServiceBusConnection), getenv(ServiceBusNamespace)
	if c.ServiceBusConnection == "" && c.ServiceBusNamespace == "" {
		bad(ServiceBusConnection, "is required, or set %s for the managed identity", ServiceBusNamespace)
	}
	c.AlertsQueue = or(getenv(AlertsQueue), "alerts")

	c.KeyVaultURL = getenv(KeyVaultURL)
	if c.KeyVaultURL == "" {
		bad(KeyVaultURL, "is required: agents escrow their passphrases there")
	}
	c.KeyVaultResourceID, c.KeyVaultMachineRoleID = getenv(KeyVaultResourceID), getenv(KeyVaultMachineRole)
	if (c.KeyVaultResourceID == "") != (c.KeyVaultMachineRoleID == "") {
		bad(KeyVaultResourceID, "and %s go together: both (the control plane assigns machines their Key Vault role) or neither (an admin does)", KeyVaultMachineRole)
	}
	if c.KeyVaultResourceID != "" && !strings.HasPrefix(strings.ToLower(c.KeyVaultResourceID), "/subscriptions/") {
		bad(KeyVaultResourceID, "must be the vault's resource ID (/subscriptions/.../providers/Microsoft.KeyVault/vaults/NAME), got %q", c.KeyVaultResourceID)
	}
	c.ARM.Endpoint, c.ARM.Token = getenv(ARMEndpoint), getenv(ARMToken)
	if c.ARM.Endpoint != "" && !strings.HasPrefix(c.ARM.Endpoint, "https://") {
		bad(ARMEndpoint, "must be an https:// URL, got %q", c.ARM.Endpoint)
	}
	if c.ARM.Token != "" && c.ARM.Endpoint == "" {
		bad(ARMToken, "is for a local Resource Manager (the Key Vault emulator) only; set %s too", ARMEndpoint)
	}
	if c.ARM.Endpoint != "" {
		c.ARM.CAFile = getenv("SSL_CERT_FILE")
	}
	c.PublicURL = getenv(PublicURL)
	if c.PublicURL == "" && getenv(WebsiteHostname) != "" {
		c.PublicURL = "https://" + getenv(WebsiteHostname)
	}
	if c.PublicURL == "" {
		bad(PublicURL, "is required: the URL agents use to reach the control plane")
	} else if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		bad(PublicURL, "must be an http(s) URL, got %q", c.PublicURL)
	}
	c.TenantID, c.ClientID = getenv(TenantID), getenv(ClientID)

	c.AuthMode = getenv(AuthMode)
	if c.AuthMode == "" {
		c.AuthMode = "tokens"
		if strings.EqualFold(getenv(WebsiteAuthEnabled), "true") {
			c.AuthMode = "appservice"
		}
	}
	c.Tokens.Contributor, c.Tokens.Operator, c.Tokens.Reader = getenv(TokenContributor), getenv(TokenOperator), getenv(TokenReader)
	c.Tokens.SecurityAdmin = getenv(TokenSecurityAdmin)
	switch c.AuthMode {
	case "appservice":
	case "tokens":
		if c.Tokens.Contributor == "" {
			bad(TokenContributor, "is required when %s is tokens (the local mode); set a long random value", AuthMode)
		}
		for _, s := range []setting{{TokenContributor, c.Tokens.Contributor}, {TokenOperator, c.Tokens.Operator}, {TokenReader, c.Tokens.Reader}, {TokenSecurityAdmin, c.Tokens.SecurityAdmin}} {
			if s.value != "" && len(s.value) < 16 {
				bad(s.name, "must be at least 16 characters")
			}
		}
		// The Security Admin is a different session from every other
		// role's, or a requester could approve its own request.
		if sa := c.Tokens.SecurityAdmin; sa != "" && (sa == c.Tokens.Contributor || sa == c.Tokens.Operator || sa == c.Tokens.Reader) {
			bad(TokenSecurityAdmin, "must differ from every other role's token: the Security Admin approves what the others request")
		}
	default:
		bad(AuthMode, "must be tokens or appservice, got %q", c.AuthMode)
	}

	c.SMTP.Host, c.SMTP.Username, c.SMTP.Password = getenv(SMTPHost), getenv(SMTPUsername), getenv(SMTPPassword)
	c.SMTP.Security, c.SMTP.From = or(getenv(SMTPSecurity), "starttls"), or(getenv(SMTPFrom), "coffer@localhost")
	if p := getenv(SMTPPort); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			bad(SMTPPort, "must be a port number, got %q", p)
		}
		c.SMTP.Port = n
	} else {
		c.SMTP.Port = 587
	}

	c.StaleJobAfter = 2 * time.Hour
	if v := getenv(StaleJobAfter); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Minute {
			bad(StaleJobAfter, "must be a duration of at least 10m, such as 2h, got %q", v)
		}
		c.StaleJobAfter = d
	}
	c.SoftDelete = 14 * 24 * time.Hour
	if v := getenv(SoftDeleteDays); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 14 || n > 180 {
			bad(SoftDeleteDays, "must be a whole number of days from 14 (as MARS) to 180, got %q", v)
		}
		c.SoftDelete = time.Duration(n) * 24 * time.Hour
	}
	c.ApprovalTTL = 24 * time.Hour
	if v := getenv(ApprovalTTL); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 15*time.Minute || d > 7*24*time.Hour {
			bad(ApprovalTTL, "must be a duration from 15m to 168h (7 days), such as 24h, got %q", v)
		}
		c.ApprovalTTL = d
	}
	c.DevClock = getenv(DevClock) == "1"
	if c.DevClock && c.AuthMode != "tokens" {
		bad(DevClock, "is for local testing only and cannot be used with App Service Authentication")
	}
	return c, errors.Join(errs...)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// StorageConn is what a storage connection string names.
type StorageConn struct{ Account, Key, Blob, Table string }

// ParseStorageConnection reads an account-key connection string, with
// explicit endpoints (Azurite) or an endpoint suffix.
func ParseStorageConnection(s string) (StorageConn, error) {
	kv := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return StorageConn{}, errors.New("connection string parts must be Name=Value separated by ';'")
		}
		kv[strings.ToLower(k)] = v
	}
	c := StorageConn{Account: kv["accountname"], Key: kv["accountkey"], Blob: kv["blobendpoint"], Table: kv["tableendpoint"]}
	if c.Account == "" || c.Key == "" {
		return StorageConn{}, errors.New("the connection string needs AccountName and AccountKey")
	}
	proto, suffix := or(kv["defaultendpointsprotocol"], "https"), or(kv["endpointsuffix"], "core.windows.net")
	if c.Blob == "" {
		c.Blob = fmt.Sprintf("%s://%s.blob.%s", proto, c.Account, suffix)
	}
	if c.Table == "" {
		c.Table = fmt.Sprintf("%s://%s.table.%s", proto, c.Account, suffix)
	}
	c.Blob, c.Table = strings.TrimSuffix(c.Blob, "/"), strings.TrimSuffix(c.Table, "/")
	return c, nil
}
