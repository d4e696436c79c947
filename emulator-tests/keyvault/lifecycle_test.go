package keyvault_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
)

const day = 24 * time.Hour

func TestDeleteRecoverPurgeLifecycle(t *testing.T) {
	s, c, clk := startWithClient(t)
	v1 := set(t, c, "lifecycle", "v1")
	v2 := set(t, c, "lifecycle", "v2")

	// Delete: the secret becomes soft-deleted and unreadable.
	deletedAt := clk.Advance(time.Minute)
	del, err := c.DeleteSecret(t.Context(), "lifecycle", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *del.RecoveryID != s.URL()+"deletedsecrets/lifecycle" || del.ID.Version() != v2.ID.Version() ||
		!del.DeletedDate.Equal(deletedAt) || !del.ScheduledPurgeDate.Equal(deletedAt.Add(90*day)) {
		t.Fatalf("deleted bundle: recoveryId %s id %s deletedDate %v scheduledPurgeDate %v",
			*del.RecoveryID, *del.ID, del.DeletedDate, del.ScheduledPurgeDate)
	}
	if del.Value != nil {
		t.Fatal("delete returned the secret value")
	}
	_, err = c.GetSecret(t.Context(), "lifecycle", "", nil)
	wantResponseError(t, err, http.StatusNotFound, "SecretNotFound")

	// While soft-deleted, the name can be neither reused nor deleted again.
	_, err = c.SetSecret(t.Context(), "lifecycle", azsecrets.SetSecretParameters{Value: ptr("v3")}, nil)
	wantResponseError(t, err, http.StatusConflict, "Conflict")
	_, err = c.DeleteSecret(t.Context(), "lifecycle", nil)
	wantResponseError(t, err, http.StatusConflict, "Conflict")

	// It is visible as a deleted secret, singly and in the list.
	got, err := c.GetDeletedSecret(t.Context(), "lifecycle", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.RecoveryID != *del.RecoveryID || !got.DeletedDate.Equal(deletedAt) {
		t.Fatalf("get deleted: %+v", got)
	}
	if names := deletedNames(t, c); len(names) != 1 || names[0] != "lifecycle" {
		t.Fatalf("deleted list %v", names)
	}

	// Recover restores every version.
	rec, err := c.RecoverDeletedSecret(t.Context(), "lifecycle", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID.Version() != v2.ID.Version() {
		t.Fatalf("recovered %s, want latest version %s", *rec.ID, v2.ID.Version())
	}
	for version, want := range map[string]string{v1.ID.Version(): "v1", v2.ID.Version(): "v2", "": "v2"} {
		got, err := c.GetSecret(t.Context(), "lifecycle", version, nil)
		if err != nil || *got.Value != want {
			t.Fatalf("after recover, version %q: %v", version, err)
		}
	}
	if names := deletedNames(t, c); len(names) != 0 {
		t.Fatalf("deleted list after recover %v", names)
	}

	// Delete and purge: gone for good, and the name is free again.
	if _, err := c.DeleteSecret(t.Context(), "lifecycle", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedSecret(t.Context(), "lifecycle", nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
	_, err = c.GetDeletedSecret(t.Context(), "lifecycle", nil)
	wantResponseError(t, err, http.StatusNotFound, "SecretNotFound")
	fresh := set(t, c, "lifecycle", "fresh")
	if fresh.ID.Version() == v1.ID.Version() || fresh.ID.Version() == v2.ID.Version() {
		t.Fatal("purged versions came back")
	}
	if n := countVersions(t, c, "lifecycle"); n != 1 {
		t.Fatalf("%d versions after purge and set, want 1", n)
	}
}

func TestPurgeAnswers204(t *testing.T) {
	s, c, _ := startWithClient(t)
	set(t, c, "purge-me", "v")
	if _, err := c.DeleteSecret(t.Context(), "purge-me", nil); err != nil {
		t.Fatal(err)
	}
	r := do(t, rawClient(t, s), s, http.MethodDelete, "/deletedsecrets/purge-me?api-version=7.4", "Bearer t", nil)
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("status %d body %q, want 204 and no body", r.status, r.body)
	}
}

func TestTimestampsFollowTheInjectedClock(t *testing.T) {
	for _, tc := range []struct {
		recoverableDays int
		retention       time.Duration
	}{
		{0, 90 * day},
		{7, 7 * day},
	} {
		t.Run(fmt.Sprintf("retention %v", tc.retention), func(t *testing.T) {
			clk := newClock()
			s := startServer(t, keyvault.Options{Now: clk.Now, RecoverableDays: tc.recoverableDays})
			c := newClient(t, s)

			createdAt := clk.Now()
			set(t, c, "clocked", "v")
			updatedAt := clk.Advance(3 * time.Hour)
			upd, err := c.UpdateSecretProperties(t.Context(), "clocked", "", azsecrets.UpdateSecretPropertiesParameters{ContentType: ptr("x")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !upd.Attributes.Created.Equal(createdAt) || !upd.Attributes.Updated.Equal(updatedAt) {
				t.Fatalf("created %v updated %v, want %v and %v", upd.Attributes.Created, upd.Attributes.Updated, createdAt, updatedAt)
			}

			deletedAt := clk.Advance(5 * day)
			del, err := c.DeleteSecret(t.Context(), "clocked", nil)
			if err != nil {
				t.Fatal(err)
			}
			purgeAt := deletedAt.Add(tc.retention)
			if !del.DeletedDate.Equal(deletedAt) || !del.ScheduledPurgeDate.Equal(purgeAt) {
				t.Fatalf("deletedDate %v scheduledPurgeDate %v, want %v and %v", del.DeletedDate, del.ScheduledPurgeDate, deletedAt, purgeAt)
			}

			// One second before the scheduled purge the secret is still recoverable...
			clk.Advance(tc.retention - time.Second)
			if _, err := c.GetDeletedSecret(t.Context(), "clocked", nil); err != nil {
				t.Fatalf("deleted secret gone before its purge date: %v", err)
			}
			// ...and once the clock reaches it, it has been purged.
			clk.Advance(time.Second)
			_, err = c.GetDeletedSecret(t.Context(), "clocked", nil)
			wantResponseError(t, err, http.StatusNotFound, "SecretNotFound")
			if names := deletedNames(t, c); len(names) != 0 {
				t.Fatalf("deleted list after purge date %v", names)
			}
			set(t, c, "clocked", "reused")
		})
	}
}

func TestClientErrorsCarryStatusAndKeyVaultCode(t *testing.T) {
	_, c, _ := startWithClient(t)
	exists := set(t, c, "exists", "v")
	if _, err := c.SetSecret(t.Context(), "disabled", azsecrets.SetSecretParameters{
		Value: ptr("v"), SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	disabledVersion := set(t, c, "disabled-old", "v")
	if _, err := c.UpdateSecretProperties(t.Context(), "disabled-old", disabledVersion.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	set(t, c, "soft-deleted", "v")
	if _, err := c.DeleteSecret(t.Context(), "soft-deleted", nil); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	setValue := func(name, value string, tags map[string]*string) error {
		_, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: &value, Tags: tags}, nil)
		return err
	}
	tooManyTags := map[string]*string{}
	for i := range 16 {
		tooManyTags[fmt.Sprint("t", i)] = ptr("v")
	}

	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"get a missing secret", func() error { _, err := c.GetSecret(ctx, "missing", "", nil); return err }, 404, "SecretNotFound"},
		{"get a missing version", func() error {
			_, err := c.GetSecret(ctx, "exists", "00000000000000000000000000000000", nil)
			return err
		}, 404, "SecretNotFound"},
		{"get a soft-deleted secret", func() error { _, err := c.GetSecret(ctx, "soft-deleted", "", nil); return err }, 404, "SecretNotFound"},
		{"update a missing secret", func() error {
			_, err := c.UpdateSecretProperties(ctx, "missing", "", azsecrets.UpdateSecretPropertiesParameters{}, nil)
			return err
		}, 404, "SecretNotFound"},
		{"delete a missing secret", func() error { _, err := c.DeleteSecret(ctx, "missing", nil); return err }, 404, "SecretNotFound"},
		{"get a missing deleted secret", func() error { _, err := c.GetDeletedSecret(ctx, "missing", nil); return err }, 404, "SecretNotFound"},
		{"get an active secret as deleted", func() error { _, err := c.GetDeletedSecret(ctx, "exists", nil); return err }, 404, "SecretNotFound"},
		{"recover a missing deleted secret", func() error { _, err := c.RecoverDeletedSecret(ctx, "missing", nil); return err }, 404, "SecretNotFound"},
		{"purge a missing deleted secret", func() error { _, err := c.PurgeDeletedSecret(ctx, "missing", nil); return err }, 404, "SecretNotFound"},
		{"purge an active secret", func() error { _, err := c.PurgeDeletedSecret(ctx, "exists", nil); return err }, 404, "SecretNotFound"},
		{"get a disabled secret", func() error { _, err := c.GetSecret(ctx, "disabled", "", nil); return err }, 403, "Forbidden"},
		{"get a disabled version", func() error {
			_, err := c.GetSecret(ctx, "disabled-old", disabledVersion.ID.Version(), nil)
			return err
		}, 403, "Forbidden"},
		{"set a soft-deleted name", func() error { return setValue("soft-deleted", "v", nil) }, 409, "Conflict"},
		{"set a soft-deleted name in other case", func() error { return setValue("SOFT-DELETED", "v", nil) }, 409, "Conflict"},
		{"delete a soft-deleted name", func() error { _, err := c.DeleteSecret(ctx, "soft-deleted", nil); return err }, 409, "Conflict"},
		{"set a name with an underscore", func() error { return setValue("bad_name", "v", nil) }, 400, "BadParameter"},
		{"set a name with a dot", func() error { return setValue("bad.name", "v", nil) }, 400, "BadParameter"},
		{"set a name with an escaped slash", func() error { return setValue("a/b", "v", nil) }, 400, "BadParameter"},
		{"set a 128-character name", func() error { return setValue(string(make128()), "v", nil) }, 400, "BadParameter"},
		{"set a value over 25 KiB", func() error { return setValue("big", string(make([]byte, 25*1024+1)), nil) }, 400, "BadParameter"},
		{"set 16 tags", func() error { return setValue("tagged", "v", tooManyTags) }, 400, "BadParameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantResponseError(t, tc.call(), tc.status, tc.code)
		})
	}

	// The limits themselves are allowed.
	if err := setValue(string(make128()[:127]), string(make([]byte, 25*1024)), nil); err != nil {
		t.Fatalf("127-character name with a 25 KiB value: %v", err)
	}
	if _, err := c.GetSecret(ctx, "exists", exists.ID.Version(), nil); err != nil {
		t.Fatal(err)
	}
}

func make128() []byte {
	b := make([]byte, 128)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

func TestConcurrentClientsSeeConsistentState(t *testing.T) {
	_, c, _ := startWithClient(t)
	const workers, perWorker = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker*3)
	for w := range workers {
		wg.Go(func() {
			own := fmt.Sprintf("worker-%d", w)
			for i := range perWorker {
				value := fmt.Sprint(i)
				if _, err := c.SetSecret(t.Context(), "shared", azsecrets.SetSecretParameters{Value: &value}, nil); err != nil {
					errs <- err
				}
				r, err := c.SetSecret(t.Context(), own, azsecrets.SetSecretParameters{Value: &value}, nil)
				if err != nil {
					errs <- err
					continue
				}
				got, err := c.GetSecret(t.Context(), own, r.ID.Version(), nil)
				if err != nil || *got.Value != value {
					errs <- fmt.Errorf("worker %d read back %v: %w", w, got.Value, err)
				}
				if _, err := c.NewListSecretPropertiesPager(nil).NextPage(t.Context()); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := countVersions(t, c, "shared"); n != workers*perWorker {
		t.Fatalf("shared secret has %d versions, want %d", n, workers*perWorker)
	}
}

// Handler serves the same vault for embedding in another server.
func TestHandlerServesTheSameVault(t *testing.T) {
	s, c, _ := startWithClient(t)
	set(t, c, "embedded", "shared-state")
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)

	r := doURL(t, hs.Client(), http.MethodGet, hs.URL+"/secrets/embedded?api-version=7.4", "Bearer t", nil)
	var b struct{ Value, ID string }
	if err := json.Unmarshal(r.body, &b); err != nil || r.status != http.StatusOK {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	// IDs name the host the request came to, so they stay usable behind the embedding server.
	if b.Value != "shared-state" || len(b.ID) < len(hs.URL) || b.ID[:len(hs.URL)] != hs.URL {
		t.Fatalf("value %q id %q", b.Value, b.ID)
	}
}

func deletedNames(t *testing.T, c *azsecrets.Client) []string {
	t.Helper()
	var names []string
	pager := c.NewListDeletedSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Value {
			if d.RecoveryID == nil || d.DeletedDate == nil || d.ScheduledPurgeDate == nil {
				t.Fatalf("deleted item lacks recovery fields: %+v", d)
			}
			names = append(names, d.ID.Name())
		}
	}
	return names
}

func countVersions(t *testing.T, c *azsecrets.Client, name string) int {
	t.Helper()
	n := 0
	pager := c.NewListSecretPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	return n
}

func TestBackupAndRestoreRoundTripEveryVersion(t *testing.T) {
	_, c, _ := startWithClient(t)
	v1 := set(t, c, "backed-up", "first")
	if _, err := c.SetSecret(t.Context(), "backed-up", azsecrets.SetSecretParameters{
		Value: ptr("second"), ContentType: ptr("text/plain"), Tags: map[string]*string{"k": ptr("v")},
	}, nil); err != nil {
		t.Fatal(err)
	}
	backup, err := c.BackupSecret(t.Context(), "backed-up", nil)
	if err != nil {
		t.Fatal(err)
	}
	blob := backup.Value

	// A name in use, active or soft-deleted, cannot be restored over.
	_, err = c.RestoreSecret(t.Context(), azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
	wantResponseError(t, err, http.StatusConflict, "Conflict")
	if _, err := c.DeleteSecret(t.Context(), "backed-up", nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.RestoreSecret(t.Context(), azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
	wantResponseError(t, err, http.StatusConflict, "Conflict")
	if _, err := c.PurgeDeletedSecret(t.Context(), "backed-up", nil); err != nil {
		t.Fatal(err)
	}

	restored, err := c.RestoreSecret(t.Context(), azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if restored.ID.Name() != "backed-up" || *restored.ContentType != "text/plain" || *restored.Tags["k"] != "v" {
		t.Fatalf("restored %s contentType %v tags %v", *restored.ID, restored.ContentType, restored.Tags)
	}
	old, err := c.GetSecret(t.Context(), "backed-up", v1.ID.Version(), nil)
	if err != nil || *old.Value != "first" {
		t.Fatalf("old version after restore: %v", err)
	}
	latest, err := c.GetSecret(t.Context(), "backed-up", "", nil)
	if err != nil || *latest.Value != "second" {
		t.Fatalf("latest after restore: %v", err)
	}

	for _, tc := range []struct {
		name string
		blob []byte
	}{
		{"garbage", []byte("not a backup")},
		{"empty JSON", []byte("{}")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.RestoreSecret(t.Context(), azsecrets.RestoreSecretParameters{SecretBackup: tc.blob}, nil)
			wantResponseError(t, err, http.StatusBadRequest, "BadParameter")
		})
	}
	_, err = c.BackupSecret(t.Context(), "missing", nil)
	wantResponseError(t, err, http.StatusNotFound, "SecretNotFound")
}
