package keyvault

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
)

// backupFormat marks the emulator's backup blobs. Key Vault's blobs are
// opaque and encrypted; these are plain JSON, which is enough for a
// backup/restore round trip within the emulator.
const backupFormat = "coffer-keyvault-emulator-backup/1"

var versionIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

type backupBlob struct {
	Format   string          `json:"format"`
	Name     string          `json:"name"`
	Versions []backupVersion `json:"versions"` // creation order
}

type backupVersion struct {
	ID          string            `json:"id"`
	Value       string            `json:"value"`
	ContentType *string           `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Enabled     bool              `json:"enabled"`
	NotBefore   *int64            `json:"nbf,omitempty"`
	Expires     *int64            `json:"exp,omitempty"`
	Created     int64             `json:"created"`
	Updated     int64             `json:"updated"`
}

type backupResult struct {
	Value string `json:"value"` // base64url without padding, as the client expects
}

// backupSecret returns every version of an active secret as one blob.
func (v *vault) backupSecret(q *request) response {
	s := v.active[secretKey(q.name)]
	if s == nil {
		return secretNotFound(q.name)
	}
	blob := backupBlob{Format: backupFormat, Name: s.name}
	for _, sv := range versionsInOrder(s) {
		blob.Versions = append(blob.Versions, backupVersion{
			ID: sv.id, Value: sv.value, ContentType: sv.contentType, Tags: sv.tags, Enabled: sv.enabled,
			NotBefore: sv.notBefore, Expires: sv.expires, Created: sv.created, Updated: sv.updated,
		})
	}
	b, err := json.Marshal(blob)
	if err != nil {
		return errorResponse(http.StatusInternalServerError, "InternalError", "marshal backup: "+err.Error())
	}
	return response{status: http.StatusOK, body: backupResult{Value: base64.RawURLEncoding.EncodeToString(b)}}
}

// restoreSecret recreates a backed-up secret with all its versions. Like Key
// Vault it refuses a name that exists, active or soft-deleted.
func (v *vault) restoreSecret(q *request) response {
	var in struct {
		Value *string `json:"value"`
	}
	if bad := decodeBody(q.body, &in); bad != nil {
		return *bad
	}
	if in.Value == nil {
		return badParameter("The backup blob is required.")
	}
	raw, err := base64.RawURLEncoding.DecodeString(*in.Value)
	if err != nil {
		return badParameter("The backup blob is not base64url: " + err.Error())
	}
	var blob backupBlob
	if err := json.Unmarshal(raw, &blob); err != nil || blob.Format != backupFormat {
		return badParameter("Backup blob contains invalid or corrupt version.")
	}
	if bad := checkBackup(blob); bad != nil {
		return *bad
	}
	key := secretKey(blob.Name)
	if d := v.deleted[key]; d != nil {
		return deletedConflict(d.name)
	}
	if v.active[key] != nil {
		return errorResponse(http.StatusConflict, "Conflict", "Secret "+blob.Name+" already exists, so the backup cannot be restored.")
	}
	s := &secret{name: blob.Name, versions: map[string]*secretVersion{}}
	for _, bv := range blob.Versions {
		v.seq++
		sv := &secretVersion{
			id: bv.ID, seq: v.seq, value: bv.Value, contentType: bv.ContentType, tags: bv.Tags, enabled: bv.Enabled,
			notBefore: bv.NotBefore, expires: bv.Expires, created: bv.Created, updated: bv.Updated,
		}
		s.versions[bv.ID] = sv
		s.latest = sv
	}
	v.active[key] = s
	return response{status: http.StatusOK, body: v.bundle(q, s, s.latest, false)}
}

// checkBackup applies the same limits as setting a secret, since a blob is
// client input too.
func checkBackup(blob backupBlob) *response {
	bad := func(msg string) *response { r := badParameter(msg); return &r }
	if !secretName.MatchString(blob.Name) {
		return bad("Backup blob names an invalid secret.")
	}
	if len(blob.Versions) == 0 {
		return bad("Backup blob holds no versions.")
	}
	seen := map[string]bool{}
	for _, bv := range blob.Versions {
		if !versionIDPattern.MatchString(bv.ID) || seen[bv.ID] {
			return bad("Backup blob contains invalid or corrupt version.")
		}
		seen[bv.ID] = true
		if len(bv.Value) > maxValueBytes || len(bv.Tags) > maxTags ||
			(bv.ContentType != nil && len(*bv.ContentType) > maxContentTypeLen) {
			return bad("Backup blob version " + strconv.Quote(bv.ID) + " exceeds Key Vault's limits.")
		}
	}
	return nil
}
