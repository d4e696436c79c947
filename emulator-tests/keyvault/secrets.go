package keyvault

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// response is what an operation produces under the vault lock; it is written
// after the lock is released so a slow client never blocks other requests.
type response struct {
	status int
	body   any
}

// apiError is Key Vault's error document.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code       string         `json:"code"`
	Message    string         `json:"message"`
	InnerError *apiInnerError `json:"innererror,omitempty"`
}

type apiInnerError struct {
	Code string `json:"code"`
}

func errorResponse(status int, code, message string) response {
	return response{status: status, body: apiError{Error: apiErrorBody{Code: code, Message: message}}}
}

func badParameter(message string) response {
	return errorResponse(http.StatusBadRequest, "BadParameter", message)
}

func secretNotFound(nameOrID string) response {
	return errorResponse(http.StatusNotFound, "SecretNotFound",
		"A secret with (name/id) "+nameOrID+" was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
}

func deletedSecretNotFound() response {
	return errorResponse(http.StatusNotFound, "SecretNotFound", "Deleted Secret not found")
}

func deletedConflict(name string) response {
	return errorResponse(http.StatusConflict, "Conflict",
		"Secret "+name+" is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.")
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeResponse(w, errorResponse(status, code, message))
}

func writeResponse(w http.ResponseWriter, resp response) {
	if resp.body == nil {
		w.WriteHeader(resp.status)
		return
	}
	b, err := json.Marshal(resp.body)
	if err != nil {
		// Only the emulator's own types are marshalled, so this is a bug; report it as one.
		http.Error(w, "marshal response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(resp.status)
	_, _ = w.Write(b)
}

// attributesJSON is a secret's attributes as Key Vault reports them: Unix seconds.
type attributesJSON struct {
	Enabled         bool   `json:"enabled"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created"`
	Updated         int64  `json:"updated"`
	RecoveryLevel   string `json:"recoveryLevel"`
	RecoverableDays int    `json:"recoverableDays"`
}

// bundleJSON covers SecretBundle, SecretItem, DeletedSecretBundle and
// DeletedSecretItem: they differ only in which fields are present.
type bundleJSON struct {
	Value              *string           `json:"value,omitempty"`
	ID                 string            `json:"id"`
	ContentType        *string           `json:"contentType,omitempty"`
	Attributes         attributesJSON    `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

type pageJSON struct {
	Value []bundleJSON `json:"value"`
	// Key Vault sends null on the last page; the client stops on null or "".
	NextLink *string `json:"nextLink"`
}

// attributesIn is what a client may set; created, updated and the recovery
// fields are read-only and ignored if sent.
type attributesIn struct {
	Enabled   *bool  `json:"enabled"`
	NotBefore *int64 `json:"nbf"`
	Expires   *int64 `json:"exp"`
}

type setBody struct {
	Value       *string            `json:"value"`
	ContentType *string            `json:"contentType"`
	Attributes  *attributesIn      `json:"attributes"`
	Tags        map[string]*string `json:"tags"`
}

type updateBody struct {
	ContentType *string            `json:"contentType"`
	Attributes  *attributesIn      `json:"attributes"`
	Tags        map[string]*string `json:"tags"`
}

// decodeBody parses a JSON object body; any failure is the client's fault (400).
func decodeBody(body []byte, dst any) *response {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		r := badParameter("The request body is empty; a JSON object is required.")
		return &r
	}
	if trimmed[0] != '{' {
		r := badParameter("The request body must be a JSON object.")
		return &r
	}
	if err := json.Unmarshal(trimmed, dst); err != nil {
		r := badParameter("The request body is not valid: " + err.Error())
		return &r
	}
	return nil
}

func checkContentTypeAndTags(contentType *string, tags map[string]*string) *response {
	if contentType != nil && len(*contentType) > maxContentTypeLen {
		r := badParameter("The content type is longer than " + strconv.Itoa(maxContentTypeLen) + " characters.")
		return &r
	}
	if len(tags) > maxTags {
		r := badParameter("A secret may have at most " + strconv.Itoa(maxTags) + " tags.")
		return &r
	}
	return checkTagLengths(tags)
}

// copyTags drops the pointer layer the client uses; a null tag value reads as "".
func copyTags(in map[string]*string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	return out
}

func secretKey(name string) string { return strings.ToLower(name) }

func (v *vault) attributes(sv *secretVersion) attributesJSON {
	return attributesJSON{
		Enabled:         sv.enabled,
		NotBefore:       sv.notBefore,
		Expires:         sv.expires,
		Created:         sv.created,
		Updated:         sv.updated,
		RecoveryLevel:   v.recoveryLevel,
		RecoverableDays: v.recoverableDays,
	}
}

// bundle describes one version; withValue is false wherever Key Vault leaves
// the value out (lists, update, delete, recover).
func (v *vault) bundle(q *request, s *secret, sv *secretVersion, withValue bool) bundleJSON {
	b := bundleJSON{
		ID:          q.baseURL() + "/secrets/" + s.name + "/" + sv.id,
		ContentType: sv.contentType,
		Attributes:  v.attributes(sv),
		Tags:        sv.tags,
	}
	if withValue {
		val := sv.value
		b.Value = &val
	}
	return b
}

func (v *vault) deletedBundle(q *request, d *deletedSecret) bundleJSON {
	b := v.bundle(q, d.secret, d.latest, false)
	b.RecoveryID = q.baseURL() + "/deletedsecrets/" + d.name
	deleted, purge := d.deletedDate, d.scheduledPurgeDate
	b.DeletedDate = &deleted
	b.ScheduledPurgeDate = &purge
	return b
}

// lookup finds an active secret's version; an empty version means the latest.
func (v *vault) lookup(name, version string) (*secret, *secretVersion, *response) {
	s := v.active[secretKey(name)]
	if s == nil {
		r := secretNotFound(name)
		return nil, nil, &r
	}
	if version == "" {
		return s, s.latest, nil
	}
	sv := s.versions[strings.ToLower(version)]
	if sv == nil {
		r := secretNotFound(name + "/" + version)
		return nil, nil, &r
	}
	return s, sv, nil
}

func (v *vault) setSecret(q *request) response {
	var in setBody
	if bad := decodeBody(q.body, &in); bad != nil {
		return *bad
	}
	if in.Value == nil {
		return badParameter("The secret value is required.")
	}
	if len(*in.Value) > maxValueBytes {
		return badParameter("The secret value is larger than " + strconv.Itoa(maxValueBytes) + " bytes.")
	}
	if bad := checkContentTypeAndTags(in.ContentType, in.Tags); bad != nil {
		return *bad
	}
	key := secretKey(q.name)
	if d := v.deleted[key]; d != nil {
		return deletedConflict(d.name)
	}
	id, err := newVersionID()
	if err != nil {
		return errorResponse(http.StatusInternalServerError, "InternalError", err.Error())
	}
	now := v.nowUnix()
	v.seq++
	sv := &secretVersion{
		id:          id,
		seq:         v.seq,
		value:       *in.Value,
		contentType: in.ContentType,
		tags:        copyTags(in.Tags),
		enabled:     true,
		created:     now,
		updated:     now,
	}
	if a := in.Attributes; a != nil {
		if a.Enabled != nil {
			sv.enabled = *a.Enabled
		}
		sv.notBefore, sv.expires = a.NotBefore, a.Expires
	}
	s := v.active[key]
	if s == nil {
		s = &secret{name: q.name, versions: map[string]*secretVersion{}}
		v.active[key] = s
	}
	s.versions[id] = sv
	s.latest = sv
	return response{status: http.StatusOK, body: v.bundle(q, s, sv, true)}
}

func (v *vault) getSecret(q *request) response {
	s, sv, bad := v.lookup(q.name, q.version)
	if bad != nil {
		return *bad
	}
	// Key Vault refuses to read a disabled secret; nbf and exp are advisory
	// for secrets and not enforced on get.
	if !sv.enabled {
		return response{status: http.StatusForbidden, body: apiError{Error: apiErrorBody{
			Code:       "Forbidden",
			Message:    "Operation get is not allowed on a disabled secret.",
			InnerError: &apiInnerError{Code: "SecretDisabled"},
		}}}
	}
	return response{status: http.StatusOK, body: v.bundle(q, s, sv, true)}
}

func (v *vault) updateSecret(q *request) response {
	var in updateBody
	if bad := decodeBody(q.body, &in); bad != nil {
		return *bad
	}
	if bad := checkContentTypeAndTags(in.ContentType, in.Tags); bad != nil {
		return *bad
	}
	s, sv, bad := v.lookup(q.name, q.version)
	if bad != nil {
		return *bad
	}
	// Fields left out of the request stay as they were.
	if in.ContentType != nil {
		sv.contentType = in.ContentType
	}
	if in.Tags != nil {
		sv.tags = copyTags(in.Tags)
	}
	if a := in.Attributes; a != nil {
		if a.Enabled != nil {
			sv.enabled = *a.Enabled
		}
		if a.NotBefore != nil {
			sv.notBefore = a.NotBefore
		}
		if a.Expires != nil {
			sv.expires = a.Expires
		}
	}
	sv.updated = v.nowUnix()
	return response{status: http.StatusOK, body: v.bundle(q, s, sv, false)}
}

func (v *vault) deleteSecret(q *request) response {
	key := secretKey(q.name)
	s := v.active[key]
	if s == nil {
		if d := v.deleted[key]; d != nil {
			return deletedConflict(d.name)
		}
		return secretNotFound(q.name)
	}
	now := v.nowUnix()
	d := &deletedSecret{
		secret:             s,
		deletedDate:        now,
		scheduledPurgeDate: now + int64(v.recoverableDays)*24*60*60,
	}
	delete(v.active, key)
	v.deleted[key] = d
	return response{status: http.StatusOK, body: v.deletedBundle(q, d)}
}

func (v *vault) getDeletedSecret(q *request) response {
	d := v.deleted[secretKey(q.name)]
	if d == nil {
		return deletedSecretNotFound()
	}
	return response{status: http.StatusOK, body: v.deletedBundle(q, d)}
}

func (v *vault) purgeDeletedSecret(q *request) response {
	key := secretKey(q.name)
	if v.deleted[key] == nil {
		return deletedSecretNotFound()
	}
	if v.purgeProtection {
		return purgeProtected()
	}
	delete(v.deleted, key)
	return response{status: http.StatusNoContent}
}

// recoverDeletedSecret restores every version, as Key Vault does.
func (v *vault) recoverDeletedSecret(q *request) response {
	key := secretKey(q.name)
	d := v.deleted[key]
	if d == nil {
		return deletedSecretNotFound()
	}
	delete(v.deleted, key)
	v.active[key] = d.secret
	return response{status: http.StatusOK, body: v.bundle(q, d.secret, d.latest, false)}
}

func (v *vault) listSecrets(q *request) response {
	keys := make([]string, 0, len(v.active))
	for k := range v.active {
		keys = append(keys, k)
	}
	return page(q, keys, func(k string) bundleJSON {
		s := v.active[k]
		b := v.bundle(q, s, s.latest, false)
		// List items carry the secret's base identifier, without a version.
		b.ID = q.baseURL() + "/secrets/" + s.name
		return b
	})
}

func (v *vault) listVersions(q *request) response {
	// Listing the versions of an unknown secret yields an empty list, not 404.
	s := v.active[secretKey(q.name)]
	var keys []string
	byKey := map[string]*secretVersion{}
	if s != nil {
		for _, sv := range s.versions {
			// Zero-padded creation order sorts as a string, so paging is stable.
			k := fmt.Sprintf("%016x", sv.seq)
			keys = append(keys, k)
			byKey[k] = sv
		}
	}
	return page(q, keys, func(k string) bundleJSON { return v.bundle(q, s, byKey[k], false) })
}

func (v *vault) listDeletedSecrets(q *request) response {
	keys := make([]string, 0, len(v.deleted))
	for k := range v.deleted {
		keys = append(keys, k)
	}
	return page(q, keys, func(k string) bundleJSON {
		d := v.deleted[k]
		b := v.deletedBundle(q, d)
		b.ID = q.baseURL() + "/secrets/" + d.name
		return b
	})
}

// page returns one page of items in key order. The continuation token is the
// last key returned, so paging stays correct while secrets come and go.
func page(q *request, keys []string, item func(string) bundleJSON) response {
	query := q.r.URL.Query()
	size := maxPageSize
	if s := query.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return badParameter("Invalid maxresults value " + strconv.Quote(s) + "; it must be an integer from 1 to " + strconv.Itoa(maxPageSize) + ".")
		}
		size = n
	}
	sort.Strings(keys)
	start := 0
	if tok := query.Get("$skiptoken"); tok != "" {
		marker, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return badParameter("Invalid $skiptoken.")
		}
		start = sort.Search(len(keys), func(i int) bool { return keys[i] > string(marker) })
	}
	end := min(start+size, len(keys))
	out := pageJSON{Value: make([]bundleJSON, 0, end-start)}
	for _, k := range keys[start:end] {
		out.Value = append(out.Value, item(k))
	}
	if end < len(keys) {
		// The client follows nextLink verbatim and adds no api-version, so
		// the link carries it, on the host the client used.
		next := q.baseURL() + q.r.URL.EscapedPath() +
			"?api-version=" + url.QueryEscape(q.apiVersion) +
			"&$skiptoken=" + base64.RawURLEncoding.EncodeToString([]byte(keys[end-1])) +
			"&maxresults=" + strconv.Itoa(size)
		out.NextLink = &next
	}
	return response{status: http.StatusOK, body: out}
}

// versionsInOrder lists a secret's versions oldest first.
func versionsInOrder(s *secret) []*secretVersion {
	out := make([]*secretVersion, 0, len(s.versions))
	for _, sv := range s.versions {
		out = append(out, sv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}
