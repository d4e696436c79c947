package keyvault_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

var versionID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestSetSecretReturnsANewVersionEachTime(t *testing.T) {
	s, c, clk := startWithClient(t)
	first := set(t, c, "db-password", "one")
	second := set(t, c, "db-password", "two")

	for _, r := range []azsecrets.SetSecretResponse{first, second} {
		if !versionID.MatchString(r.ID.Version()) {
			t.Fatalf("version %q is not 32 hex characters", r.ID.Version())
		}
		if want := s.URL() + "secrets/db-password/" + r.ID.Version(); string(*r.ID) != want {
			t.Fatalf("id %s, want %s", *r.ID, want)
		}
		if r.ID.Name() != "db-password" {
			t.Fatalf("id name %q", r.ID.Name())
		}
		a := r.Attributes
		if !*a.Enabled || !a.Created.Equal(clk.Now()) || !a.Updated.Equal(clk.Now()) ||
			*a.RecoveryLevel != "Recoverable+Purgeable" || *a.RecoverableDays != 90 {
			t.Fatalf("attributes enabled=%v created=%v updated=%v level=%s days=%d",
				*a.Enabled, a.Created, a.Updated, *a.RecoveryLevel, *a.RecoverableDays)
		}
	}
	if first.ID.Version() == second.ID.Version() {
		t.Fatal("two sets produced the same version")
	}
	if *first.Value != "one" || *second.Value != "two" {
		t.Fatalf("set returned values %q, %q", *first.Value, *second.Value)
	}
}

func TestGetSecretLatestAndByVersion(t *testing.T) {
	_, c, _ := startWithClient(t)
	old := set(t, c, "api-key", "old")
	latest := set(t, c, "api-key", "new")

	for _, tc := range []struct {
		name, secret, version, want string
	}{
		{"latest (empty version)", "api-key", "", "new"},
		{"latest version by ID", "api-key", latest.ID.Version(), "new"},
		{"older version by ID", "api-key", old.ID.Version(), "old"},
		{"names are case-insensitive", "API-KEY", "", "new"},
		{"version IDs are case-insensitive", "api-key", strings.ToUpper(old.ID.Version()), "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.GetSecret(t.Context(), tc.secret, tc.version, nil)
			if err != nil {
				t.Fatal(err)
			}
			if *got.Value != tc.want {
				t.Fatalf("value %q, want %q", *got.Value, tc.want)
			}
			// The ID keeps the casing the secret was created with.
			if got.ID.Name() != "api-key" {
				t.Fatalf("id %s", *got.ID)
			}
		})
	}
}

func TestGetLatestWithAndWithoutTrailingSlash(t *testing.T) {
	s, c, _ := startWithClient(t)
	set(t, c, "slashes", "v")
	hc := rawClient(t, s)
	for _, path := range []string{"/secrets/slashes", "/secrets/slashes/"} {
		t.Run(path, func(t *testing.T) {
			r := do(t, hc, s, http.MethodGet, path+"?api-version=7.4", "Bearer t", nil)
			var b struct{ Value, ID string }
			if err := json.Unmarshal(r.body, &b); err != nil || r.status != http.StatusOK || b.Value != "v" {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
		})
	}
}

func TestSetSecretStoresContentTypeTagsAndAttributes(t *testing.T) {
	_, c, clk := startWithClient(t)
	nbf := clk.Now().Add(time.Hour)
	exp := clk.Now().Add(48 * time.Hour)
	_, err := c.SetSecret(t.Context(), "full", azsecrets.SetSecretParameters{
		Value:       ptr("pem-data"),
		ContentType: ptr("application/x-pem-file"),
		Tags:        map[string]*string{"owner": ptr("coffer"), "env": ptr("dev")},
		SecretAttributes: &azsecrets.SecretAttributes{
			NotBefore: &nbf,
			Expires:   &exp,
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Key Vault does not enforce nbf/exp on get: a not-yet-valid secret is readable.
	got, err := c.GetSecret(t.Context(), "full", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.ContentType != "application/x-pem-file" || *got.Tags["owner"] != "coffer" || *got.Tags["env"] != "dev" || len(got.Tags) != 2 {
		t.Fatalf("contentType %v tags %v", got.ContentType, got.Tags)
	}
	if !got.Attributes.NotBefore.Equal(nbf) || !got.Attributes.Expires.Equal(exp) {
		t.Fatalf("nbf %v exp %v", got.Attributes.NotBefore, got.Attributes.Expires)
	}
}

func TestRecoveryLevelFollowsRetention(t *testing.T) {
	for _, tc := range []struct {
		days      int
		wantDays  int32
		wantLevel string
	}{
		{0, 90, "Recoverable+Purgeable"},
		{90, 90, "Recoverable+Purgeable"},
		{7, 7, "CustomizedRecoverable+Purgeable"},
	} {
		t.Run(fmt.Sprint(tc.days), func(t *testing.T) {
			s := startServer(t, keyvault.Options{RecoverableDays: tc.days})
			r := set(t, newClient(t, s), "level", "v")
			if *r.Attributes.RecoverableDays != tc.wantDays || *r.Attributes.RecoveryLevel != tc.wantLevel {
				t.Fatalf("days %d level %s", *r.Attributes.RecoverableDays, *r.Attributes.RecoveryLevel)
			}
		})
	}
	for _, days := range []int{-1, 91} {
		if s, err := keyvault.Start(keyvault.Options{RecoverableDays: days}); err == nil {
			_ = s.Close()
			t.Fatalf("retention of %d days accepted; Key Vault allows 1 to 90", days)
		}
	}
}

func TestListSecretsPagesThroughAllActiveSecrets(t *testing.T) {
	s, c, _ := startWithClient(t)
	var want []string
	for i := range 30 { // more than one default page of 25
		name := fmt.Sprintf("secret-%02d", i)
		set(t, c, name, "v")
		want = append(want, name)
	}
	set(t, c, "soft-deleted", "v")
	if _, err := c.DeleteSecret(t.Context(), "soft-deleted", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateSecretProperties(t.Context(), "secret-00", "", azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false)},
	}, nil); err != nil {
		t.Fatal(err)
	}

	var got []string
	var pageSizes []int
	pager := c.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		pageSizes = append(pageSizes, len(page.Value))
		for _, p := range page.Value {
			// List items carry the base identifier, without a version.
			if string(*p.ID) != s.URL()+"secrets/"+p.ID.Name() || p.ID.Version() != "" {
				t.Fatalf("list item id %s", *p.ID)
			}
			got = append(got, p.ID.Name())
		}
	}
	// Disabled secrets are listed; deleted ones are not.
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if !slices.Equal(pageSizes, []int{25, 5}) {
		t.Fatalf("page sizes %v, want [25 5]", pageSizes)
	}
}

// listPage is a raw list response.
type listPage struct {
	Value    []map[string]any `json:"value"`
	NextLink *string          `json:"nextLink"`
}

func TestListHonoursMaxResultsWithAbsoluteNextLinks(t *testing.T) {
	s, c, _ := startWithClient(t)
	for i := range 5 {
		set(t, c, fmt.Sprintf("paged-%d", i), "secret-value")
	}
	for range 3 {
		set(t, c, "versioned", "v")
	}
	hc := rawClient(t, s)

	for _, tc := range []struct {
		path      string
		max       int
		wantItems int
		wantPages int
	}{
		{"secrets", 2, 6, 3},
		{"secrets", 25, 6, 1},
		{"secrets/versioned/versions", 1, 3, 3},
		{"secrets/no-such-secret/versions", 1, 0, 1},
	} {
		t.Run(fmt.Sprintf("%s max %d", tc.path, tc.max), func(t *testing.T) {
			next := fmt.Sprintf("%s%s?api-version=7.4&maxresults=%d", s.URL(), tc.path, tc.max)
			items, pages := 0, 0
			for next != "" {
				r := doURL(t, hc, http.MethodGet, next, "Bearer t", nil)
				var p listPage
				if err := json.Unmarshal(r.body, &p); err != nil || r.status != http.StatusOK {
					t.Fatalf("status %d body %s", r.status, r.body)
				}
				pages++
				items += len(p.Value)
				if len(p.Value) > tc.max {
					t.Fatalf("page of %d items, maxresults %d", len(p.Value), tc.max)
				}
				for _, it := range p.Value {
					if _, ok := it["value"]; ok {
						t.Fatalf("list item carries the secret value: %v", it)
					}
				}
				next = ""
				if p.NextLink != nil {
					next = *p.NextLink
					if !strings.HasPrefix(next, s.URL()+tc.path+"?") {
						t.Fatalf("nextLink %s is not an absolute link on the vault", next)
					}
				}
			}
			if items != tc.wantItems || pages != tc.wantPages {
				t.Fatalf("%d items in %d pages, want %d in %d", items, pages, tc.wantItems, tc.wantPages)
			}
		})
	}
}

func TestListVersionsReturnsEveryVersionWithoutValues(t *testing.T) {
	_, c, _ := startWithClient(t)
	var want []string
	for i := range 3 {
		want = append(want, set(t, c, "rotated", fmt.Sprint(i)).ID.Version())
	}
	set(t, c, "unrelated", "v")

	var got []string
	pager := c.NewListSecretPropertiesVersionsPager("rotated", nil)
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			if p.ID.Name() != "rotated" {
				t.Fatalf("version of another secret listed: %s", *p.ID)
			}
			got = append(got, p.ID.Version())
		}
	}
	// Versions come back in creation order.
	if !slices.Equal(got, want) {
		t.Fatalf("versions %v, want %v", got, want)
	}
}

func TestUpdateSecretPropertiesChangesOnlyWhatIsSent(t *testing.T) {
	_, c, clk := startWithClient(t)
	created := clk.Now()
	first, err := c.SetSecret(t.Context(), "props", azsecrets.SetSecretParameters{
		Value: ptr("keep-me"), ContentType: ptr("text/plain"), Tags: map[string]*string{"a": ptr("1")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set(t, c, "props", "latest-value")
	updatedAt := clk.Advance(time.Hour)
	exp := clk.Now().Add(24 * time.Hour)

	// Update the older version by ID: every field.
	upd, err := c.UpdateSecretProperties(t.Context(), "props", first.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{
		ContentType:      ptr("application/json"),
		Tags:             map[string]*string{"b": ptr("2")},
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false), Expires: &exp},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if upd.Value != nil {
		t.Fatal("update returned the secret value")
	}
	a := upd.Attributes
	if *upd.ContentType != "application/json" || len(upd.Tags) != 1 || *upd.Tags["b"] != "2" ||
		*a.Enabled || !a.Expires.Equal(exp) || !a.Created.Equal(created) || !a.Updated.Equal(updatedAt) {
		t.Fatalf("after update: contentType %v tags %v enabled %v exp %v created %v updated %v",
			*upd.ContentType, upd.Tags, *a.Enabled, a.Expires, a.Created, a.Updated)
	}
	if upd.ID.Version() != first.ID.Version() {
		t.Fatalf("updated version %s, want %s", upd.ID.Version(), first.ID.Version())
	}

	// Re-enable with an otherwise empty update: content type, tags and value are kept.
	if _, err := c.UpdateSecretProperties(t.Context(), "props", first.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(true)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetSecret(t.Context(), "props", first.ID.Version(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Value != "keep-me" || *got.ContentType != "application/json" || *got.Tags["b"] != "2" {
		t.Fatalf("after re-enable: value %q contentType %q tags %v", *got.Value, *got.ContentType, got.Tags)
	}

	// An empty version updates the latest one only.
	if _, err := c.UpdateSecretProperties(t.Context(), "props", "", azsecrets.UpdateSecretPropertiesParameters{
		ContentType: ptr("latest/only"),
	}, nil); err != nil {
		t.Fatal(err)
	}
	latest, err := c.GetSecret(t.Context(), "props", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *latest.Value != "latest-value" || *latest.ContentType != "latest/only" {
		t.Fatalf("latest: value %q contentType %v", *latest.Value, latest.ContentType)
	}
}
