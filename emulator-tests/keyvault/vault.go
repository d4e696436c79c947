package keyvault

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// keyVaultResource is the resource every public-cloud vault names in its challenge.
	keyVaultResource = "https://vault.azure.net"
	// maxBodyBytes bounds what a request may make the emulator read.
	maxBodyBytes = 1 << 20
	// maxValueBytes is Key Vault's documented secret value limit (25k bytes).
	maxValueBytes = 25 * 1024
	// maxTags is Key Vault's limit on tags per object.
	maxTags = 15
	// maxContentTypeLen is Key Vault's limit on a secret's content type.
	maxContentTypeLen = 255
	// maxPageSize is both the default and the largest maxresults Key Vault allows.
	maxPageSize = 25
)

// secretName is Key Vault's rule for object names.
var secretName = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)

// vault is the state and HTTP API of one emulated vault.
type vault struct {
	now             func() time.Time
	recoverableDays int
	recoveryLevel   string
	challenge       string
	tenant          string
	// authz is nil when RBAC is off (Options.Access nil).
	authz           *authz
	purgeProtection bool
	resourceID      string

	mu  sync.Mutex
	seq uint64
	// Key Vault names are case-insensitive, so both maps are keyed by the
	// lower-cased name; secret.name keeps the casing it was created with.
	active  map[string]*secret
	deleted map[string]*deletedSecret
}

type secret struct {
	name     string
	versions map[string]*secretVersion // keyed by lower-cased version ID
	latest   *secretVersion
}

type secretVersion struct {
	id          string
	seq         uint64 // creation order, for listing versions stably
	value       string
	contentType *string
	tags        map[string]string
	enabled     bool
	notBefore   *int64
	expires     *int64
	created     int64
	updated     int64
}

type deletedSecret struct {
	*secret
	deletedDate        int64
	scheduledPurgeDate int64
}

func newVault(opts Options) (*vault, error) {
	days := opts.RecoverableDays
	switch {
	case days == 0:
		days = defaultRecoverableDays
	case days < 0 || days > defaultRecoverableDays:
		// 90 days is both Key Vault's default and its maximum retention.
		return nil, fmt.Errorf("keyvault emulator: RecoverableDays must be 1 to 90 (0 for the default), got %d", days)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	tenant := opts.TenantID
	if tenant == "" {
		tenant = defaultTenantID
	}
	// Key Vault reports the plain level only at the default 90-day retention;
	// a shorter retention is "Customized". "+Purgeable" means a privileged
	// caller may purge early; purge protection takes that away.
	level := "Recoverable"
	if days != defaultRecoverableDays {
		level = "CustomizedRecoverable"
	}
	if !opts.PurgeProtection {
		level += "+Purgeable"
	}
	resourceID := strings.TrimSuffix(opts.ResourceID, "/")
	if resourceID == "" {
		resourceID = DefaultResourceID
	}
	if !strings.HasPrefix(strings.ToLower(resourceID), "/subscriptions/") || !strings.Contains(strings.ToLower(resourceID), "/providers/microsoft.keyvault/vaults/") {
		return nil, fmt.Errorf("keyvault emulator: ResourceID %q is not a vault's resource ID (/subscriptions/.../providers/Microsoft.KeyVault/vaults/NAME)", opts.ResourceID)
	}
	var z *authz
	if opts.Access != nil {
		var err error
		if z, err = newAuthz(opts.Access); err != nil {
			return nil, err
		}
	}
	return &vault{
		now:             now,
		recoverableDays: days,
		recoveryLevel:   level,
		tenant:          tenant,
		authz:           z,
		purgeProtection: opts.PurgeProtection,
		resourceID:      resourceID,
		// The azsecrets challenge policy splits this on spaces and '=', so the
		// format must stay exactly Key Vault's.
		challenge: fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="%s"`, tenant, keyVaultResource),
		active:    map[string]*secret{},
		deleted:   map[string]*deletedSecret{},
	}, nil
}

// nowUnix is the injected clock in Key Vault's resolution (whole seconds).
func (v *vault) nowUnix() int64 { return v.now().Unix() }

// purgeExpired drops soft-deleted secrets whose retention has passed. It runs
// lazily on every request, so the emulator needs no background goroutine.
// Callers hold v.mu.
func (v *vault) purgeExpired(now int64) {
	for k, d := range v.deleted {
		if now >= d.scheduledPurgeDate {
			delete(v.deleted, k)
		}
	}
}

func newVersionID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("version id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ServeHTTP authenticates, checks api-version and routes a request.
func (v *vault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-ms-keyvault-service-version", "emulator")
	if !hasBearerToken(r.Header.Values("Authorization")) {
		// Key Vault answers unauthenticated requests with a challenge naming
		// the tenant and resource to get a token for.
		w.Header().Set("WWW-Authenticate", v.challenge)
		writeError(w, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	var caller string
	if v.authz != nil {
		var ok bool
		if caller, ok = v.authz.principal(bearerToken(r.Header.Get("Authorization"))); !ok {
			// A token Key Vault cannot validate is refused like a missing one,
			// with a fresh challenge.
			w.Header().Set("WWW-Authenticate", v.challenge)
			writeError(w, http.StatusUnauthorized, "Unauthorized",
				"AKV10032: Invalid issuer. The bearer token is not one this emulator issued or was configured with (Options.Access.Principals).")
			return
		}
	}
	if isARM(r.URL.EscapedPath()) {
		// Role assignments, as Azure Resource Manager serves them for the
		// vault's scope, for the delegate that grants machines their role.
		if v.authz == nil {
			writeError(w, http.StatusNotFound, "NotFound", "Role assignments exist only with RBAC on (Options.Access).")
			return
		}
		body, err := readBody(w, r)
		if err != nil {
			writeError(w, http.StatusBadRequest, "InvalidRequestContent", "The request body could not be read (at most "+strconv.Itoa(maxBodyBytes)+" bytes).")
			return
		}
		writeResponse(w, v.serveARM(caller, r, body))
		return
	}
	apiVersion := r.URL.Query().Get("api-version")
	if bad := checkAPIVersion(apiVersion); bad != nil {
		writeResponse(w, *bad)
		return
	}
	rt, ok := route(r)
	if !ok {
		writeError(w, http.StatusNotFound, "NotFound", "The requested resource "+r.URL.Path+" was not found.")
		return
	}
	if !rt.allows(r.Method) {
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The method "+r.Method+" is not allowed on "+r.URL.Path+".")
		return
	}
	if rt.named && !secretName.MatchString(rt.name) {
		writeError(w, http.StatusBadRequest, "BadParameter",
			"The request URI contains an invalid name: "+rt.name+". Names are 1-127 characters of letters, digits and dashes.")
		return
	}
	if v.authz != nil {
		action, scope := rt.actions[r.Method], "/"
		// A restore names its secret only inside the blob, so Key Vault
		// authorizes it at the vault.
		if rt.named && action != ActionRestore {
			scope = "/secrets/" + rt.name
		}
		if !v.authz.allowed(caller, action, scope) {
			writeResponse(w, forbiddenByRBAC(caller, action, scope))
			return
		}
	}
	req := &request{r: r, apiVersion: apiVersion, name: rt.name, version: rt.version}
	if r.Method == http.MethodPut || r.Method == http.MethodPatch || r.Method == http.MethodPost {
		// Read the body before taking the lock so a slow sender blocks nobody.
		body, err := readBody(w, r)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge",
					"The request body is larger than "+strconv.Itoa(maxBodyBytes)+" bytes.")
				return
			}
			writeError(w, http.StatusBadRequest, "BadParameter", "The request body could not be read.")
			return
		}
		req.body = body
	}
	v.mu.Lock()
	v.purgeExpired(v.nowUnix())
	resp := rt.handle(v, req)
	v.mu.Unlock()
	writeResponse(w, resp)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return body, nil
}

// hasBearerToken accepts exactly one "Bearer <token>" header whose token is
// RFC 6750 token68 syntax; any token is valid since there is no Entra ID here.
func hasBearerToken(values []string) bool {
	if len(values) != 1 {
		return false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	body := strings.TrimRight(token, "=")
	if body == "" {
		return false
	}
	for _, c := range body {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("-._~+/", c):
		default:
			return false
		}
	}
	return true
}

// request carries what a handler needs about one call.
type request struct {
	r          *http.Request
	body       []byte
	apiVersion string
	name       string
	version    string
}

// baseURL is the vault URL as the client addressed it, so IDs and nextLinks
// point back at the same host and the client's ID parsing works.
func (q *request) baseURL() string {
	scheme := "https"
	if q.r.TLS == nil {
		scheme = "http"
	}
	host := q.r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + host
}

type routeMatch struct {
	methods []string
	named   bool // the path has a name segment, which must then be valid
	name    string
	version string
	handle  func(*vault, *request) response
	// actions is the RBAC data action each method needs; the scope is the
	// named secret, or the vault for unnamed paths.
	actions map[string]string
}

func (m routeMatch) allows(method string) bool {
	for _, x := range m.methods {
		if x == method {
			return true
		}
	}
	return false
}

// route maps a path to its operation. The path is split before unescaping so
// an escaped slash stays inside a name (and then fails name validation).
func route(r *http.Request) (routeMatch, bool) {
	raw := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	seg := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return routeMatch{}, false
		}
		seg[i] = u
	}
	byMethod := func(named bool, name, version string, handlers map[string]func(*vault, *request) response, actions map[string]string) (routeMatch, bool) {
		m := routeMatch{named: named, name: name, version: version, actions: actions}
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodPost, http.MethodDelete} {
			if _, ok := handlers[method]; ok {
				m.methods = append(m.methods, method)
			}
		}
		m.handle = func(v *vault, q *request) response { return handlers[q.r.Method](v, q) }
		return m, true
	}
	switch {
	case len(seg) == 1 && seg[0] == "secrets", len(seg) == 2 && seg[0] == "secrets" && seg[1] == "":
		return byMethod(false, "", "", map[string]func(*vault, *request) response{http.MethodGet: (*vault).listSecrets},
			map[string]string{http.MethodGet: ActionReadMetadata})
	case len(seg) == 2 && seg[0] == "secrets":
		handlers := map[string]func(*vault, *request) response{
			http.MethodGet:    (*vault).getSecret,
			http.MethodPut:    (*vault).setSecret,
			http.MethodDelete: (*vault).deleteSecret,
		}
		actions := map[string]string{http.MethodGet: ActionGetSecret, http.MethodPut: ActionSetSecret, http.MethodDelete: ActionDelete}
		// "restore" is still a valid secret name for the other methods.
		if seg[1] == "restore" {
			handlers[http.MethodPost] = (*vault).restoreSecret
			actions[http.MethodPost] = ActionRestore
		}
		return byMethod(true, seg[1], "", handlers, actions)
	case len(seg) == 3 && seg[0] == "secrets" && seg[2] == "versions":
		return byMethod(true, seg[1], "", map[string]func(*vault, *request) response{http.MethodGet: (*vault).listVersions},
			map[string]string{http.MethodGet: ActionReadMetadata})
	case len(seg) == 3 && seg[0] == "secrets":
		// An empty version (trailing slash) means the latest, as the client
		// sends it when asked for version "".
		handlers := map[string]func(*vault, *request) response{
			http.MethodGet:   (*vault).getSecret,
			http.MethodPatch: (*vault).updateSecret,
		}
		actions := map[string]string{http.MethodGet: ActionGetSecret, http.MethodPatch: ActionUpdate}
		if seg[2] == "backup" {
			handlers[http.MethodPost] = (*vault).backupSecret
			actions[http.MethodPost] = ActionBackup
		}
		return byMethod(true, seg[1], seg[2], handlers, actions)
	case len(seg) == 1 && seg[0] == "deletedsecrets", len(seg) == 2 && seg[0] == "deletedsecrets" && seg[1] == "":
		return byMethod(false, "", "", map[string]func(*vault, *request) response{http.MethodGet: (*vault).listDeletedSecrets},
			map[string]string{http.MethodGet: ActionReadMetadata})
	case len(seg) == 2 && seg[0] == "deletedsecrets":
		return byMethod(true, seg[1], "", map[string]func(*vault, *request) response{
			http.MethodGet:    (*vault).getDeletedSecret,
			http.MethodDelete: (*vault).purgeDeletedSecret,
		}, map[string]string{http.MethodGet: ActionReadMetadata, http.MethodDelete: ActionPurge})
	case len(seg) == 3 && seg[0] == "deletedsecrets" && seg[2] == "recover":
		return byMethod(true, seg[1], "", map[string]func(*vault, *request) response{http.MethodPost: (*vault).recoverDeletedSecret},
			map[string]string{http.MethodPost: ActionRecover})
	}
	return routeMatch{}, false
}
