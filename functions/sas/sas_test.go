package sas

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/devcert"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/shared/clocktest"
)

var emus ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emus.Main(m)) }

// emulator starts Azurite on first use; under -short it skips t.
func emulator(t testing.TB) *azurite.Azurite {
	t.Helper()
	return emus.StartAzurite(t)
}

var containerSeq atomic.Int64

// uniqueName is a fresh container name for one test.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), containerSeq.Add(1))
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func devIssuer(t *testing.T, now func() time.Time) *Issuer {
	t.Helper()
	i, err := NewSharedKey(emulator(t).BlobURL(), azurite.AccountName, azurite.AccountKey, now)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func devService(t *testing.T) *service.Client {
	t.Helper()
	svc, err := service.NewClientFromConnectionString(emulator(t).ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func createContainers(t *testing.T, svc *service.Client, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := svc.CreateContainer(t.Context(), n, nil); err != nil {
			t.Fatalf("create container %s: %v", n, err)
		}
	}
}

// checkGrant shows what an agent holding g can and cannot do, in its own
// container (which holds the blob "existing") and in another one.
func checkGrant(t *testing.T, g Grant, other string, opts *container.ClientOptions) {
	t.Helper()
	ctx := t.Context()
	own, err := container.NewClientWithNoCredential(g.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	otherURL := g.ContainerURL[:strings.LastIndex(g.ContainerURL, "/")+1] + other + "?" + g.SAS
	foreign, err := container.NewClientWithNoCredential(otherURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(g.SAS)
	if err != nil {
		t.Fatal(err)
	}
	q.Set("se", g.ExpiresOn.Add(time.Hour).UTC().Format(time.RFC3339)) // the signature no longer matches
	tampered, err := container.NewClientWithNoCredential(g.ContainerURL+"?"+q.Encode(), opts)
	if err != nil {
		t.Fatal(err)
	}
	upload := func(c *container.Client, name, body string) error {
		_, err := c.NewBlockBlobClient(name).UploadBuffer(ctx, []byte(body), nil)
		return err
	}
	read := func(c *container.Client, name string) (string, error) {
		resp, err := c.NewBlobClient(name).DownloadStream(ctx, nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	list := func(c *container.Client) ([]string, error) {
		var names []string
		pager := c.NewListBlobsFlatPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			for _, it := range page.Segment.BlobItems {
				names = append(names, *it.Name)
			}
		}
		return names, nil
	}

	for _, tc := range []struct {
		name string
		op   func() error
		want int // 0 for success, else the HTTP status
	}{
		{"create a new blob", func() error { return upload(own, "data/ab/new", "new") }, 0},
		{"read it", func() error {
			got, err := read(own, "data/ab/new")
			if err == nil && got != "new" {
				return fmt.Errorf("read %q, want new", got)
			}
			return err
		}, 0},
		{"list the container", func() error {
			names, err := list(own)
			if err == nil && strings.Join(names, ",") != "data/ab/new,existing" {
				return fmt.Errorf("listed %v", names)
			}
			return err
		}, 0},
		{"overwrite an existing blob", func() error { return upload(own, "existing", "changed") }, http.StatusForbidden},
		{"delete", func() error { _, err := own.NewBlobClient("existing").Delete(ctx, nil); return err }, http.StatusForbidden},
		{"create in another container", func() error { return upload(foreign, "x", "x") }, http.StatusForbidden},
		{"read in another container", func() error { _, err := read(foreign, "existing"); return err }, http.StatusForbidden},
		{"list another container", func() error { _, err := list(foreign); return err }, http.StatusForbidden},
		{"list with a tampered SAS", func() error { _, err := list(tampered); return err }, http.StatusForbidden},
	} {
		err := tc.op()
		switch {
		case tc.want == 0 && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != 0 && statusOf(err) != tc.want:
			t.Errorf("%s: got %v, want HTTP %d", tc.name, err, tc.want)
		}
	}
	if got, err := read(own, "existing"); err != nil || got != "original" {
		t.Errorf("after the refused overwrite the blob holds %q (%v), want original", got, err)
	}
}

func TestSharedKeyGrantAllowsCreateReadListOnlyInItsContainer(t *testing.T) {
	svc := devService(t)
	own, other := uniqueName("own"), uniqueName("other")
	createContainers(t, svc, own, other)
	for _, c := range []string{own, other} {
		if _, err := svc.NewContainerClient(c).NewBlockBlobClient("existing").UploadBuffer(t.Context(), []byte("original"), nil); err != nil {
			t.Fatal(err)
		}
	}
	g, err := devIssuer(t, time.Now).Container(t.Context(), own, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if g.ContainerURL != emulator(t).BlobURL()+"/"+own || strings.Contains(g.ContainerURL, "?") {
		t.Fatalf("ContainerURL = %q", g.ContainerURL)
	}
	checkGrant(t, g, other, nil)
}

func sasQuery(t *testing.T, g Grant) url.Values {
	t.Helper()
	q, err := url.ParseQuery(g.SAS)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestGrantTimesAndPermissions(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	i := devIssuer(t, newClock(now).Now)
	for _, tc := range []struct {
		ttl, want time.Duration
	}{
		{time.Second, time.Second},
		{15 * time.Minute, 15 * time.Minute},
		{time.Hour, time.Hour},
		{time.Hour + time.Nanosecond, time.Hour},
		{5 * time.Hour, time.Hour},
	} {
		g, err := i.Container(t.Context(), "machine-1", tc.ttl)
		if err != nil {
			t.Fatal(err)
		}
		q := sasQuery(t, g)
		if !g.ExpiresOn.Equal(now.Add(tc.want)) || q.Get("se") != now.Add(tc.want).Format(time.RFC3339) {
			t.Errorf("ttl %v: ExpiresOn %v, se=%s; want now+%v", tc.ttl, g.ExpiresOn, q.Get("se"), tc.want)
		}
		if q.Get("st") != now.Add(-5*time.Minute).Format(time.RFC3339) {
			t.Errorf("ttl %v: st=%s, want now-5min", tc.ttl, q.Get("st"))
		}
		if q.Get("sp") != Permissions || q.Get("sr") != "c" {
			t.Errorf("ttl %v: sp=%s sr=%s, want sp=%s sr=c", tc.ttl, q.Get("sp"), q.Get("sr"), Permissions)
		}
	}
	for _, ttl := range []time.Duration{0, -time.Minute} {
		if _, err := i.Container(t.Context(), "machine-1", ttl); err == nil {
			t.Errorf("ttl %v accepted", ttl)
		}
	}
}

// A SAS issued by a control plane whose clock is two hours behind expired
// an hour ago in real time: the storage service must refuse it.
func TestExpiredGrantIsRefused(t *testing.T) {
	svc := devService(t)
	name := uniqueName("expired")
	createContainers(t, svc, name)
	g, err := devIssuer(t, newClock(time.Now().Add(-2*time.Hour)).Now).Container(t.Context(), name, MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithNoCredential(g.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewBlockBlobClient("x").UploadBuffer(t.Context(), []byte("x"), nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("create with an expired SAS: got %v, want 403", err)
	}
	if _, err := c.NewListBlobsFlatPager(nil).NextPage(t.Context()); statusOf(err) != http.StatusForbidden {
		t.Fatalf("list with an expired SAS: got %v, want 403", err)
	}
}

func TestContainerNames(t *testing.T) {
	i := devIssuer(t, time.Now)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"abc", true},
		{"machine-0f3a", true},
		{"a-b-c-1", true},
		{strings.Repeat("a", 63), true},
		{"ab", false},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Machine", false},
		{"a--b", false},
		{"-abc", false},
		{"abc-", false},
		{"a_b", false},
		{"a.b", false},
		{"$logs", false},
		{"$root", false},
		{"abc/def", false},
		{"abc?x=1", false},
		{"ünï", false},
	} {
		err := CheckContainerName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckContainerName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if _, err := i.Container(t.Context(), tc.name, time.Minute); (err == nil) != tc.ok {
			t.Errorf("Container(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSharedKeyServiceURLs(t *testing.T) {
	for _, tc := range []struct {
		url     string
		ok      bool
		spr     string
		wantURL string
	}{
		{"http://127.0.0.1:10000/devstoreaccount1", true, "https,http", "http://127.0.0.1:10000/devstoreaccount1/box"},
		{"http://[::1]:10000/devstoreaccount1/", true, "https,http", "http://[::1]:10000/devstoreaccount1/box"},
		{"http://localhost:10000/devstoreaccount1", true, "https,http", "http://localhost:10000/devstoreaccount1/box"},
		{"http://devstoreaccount1.blob.localhost:10000", true, "https,http", "http://devstoreaccount1.blob.localhost:10000/box"},
		{"https://acct.blob.core.windows.net", true, "https", "https://acct.blob.core.windows.net/box"},
		{"https://acct.blob.core.windows.net/", true, "https", "https://acct.blob.core.windows.net/box"},
		{"https://127.0.0.1:10000/devstoreaccount1", true, "https", "https://127.0.0.1:10000/devstoreaccount1/box"},
		{"http://acct.blob.core.windows.net", false, "", ""},
		{"http://10.0.0.7:10000/devstoreaccount1", false, "", ""},
		{"http://localhost.example.com", false, "", ""},
		{"ftp://127.0.0.1", false, "", ""},
		{"https://acct.blob.core.windows.net?sv=1", false, "", ""},
		{"acct.blob.core.windows.net", false, "", ""},
		{"", false, "", ""},
	} {
		i, err := NewSharedKey(tc.url, azurite.AccountName, azurite.AccountKey, time.Now)
		if (err == nil) != tc.ok {
			t.Errorf("NewSharedKey(%q): %v, want ok=%v", tc.url, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		g, err := i.Container(t.Context(), "box", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if spr := sasQuery(t, g).Get("spr"); spr != tc.spr || g.ContainerURL != tc.wantURL {
			t.Errorf("%s: spr=%q ContainerURL=%q, want %q %q", tc.url, spr, g.ContainerURL, tc.spr, tc.wantURL)
		}
	}
	if _, err := NewSharedKey("http://127.0.0.1:10000/devstoreaccount1", azurite.AccountName, "not base64!", time.Now); err == nil {
		t.Error("a malformed account key was accepted")
	}
}

func TestUserDelegationNeedsAClient(t *testing.T) {
	if _, err := NewUserDelegation(nil, "https://acct.blob.core.windows.net", nil).Container(t.Context(), "box", time.Minute); err == nil {
		t.Fatal("grant issued without a service client")
	}
}

func TestUserDelegationRefusesPlainHTTP(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:10000/devstoreaccount1", "http://acct.blob.core.windows.net"} {
		i := NewUserDelegation(devService(t), u, time.Now)
		if _, err := i.Container(t.Context(), "box", time.Minute); err == nil {
			t.Errorf("%s: user delegation grant issued over plain HTTP", u)
		}
	}
}

// ---- User delegation against Azurite ----
//
// Azurite serves user delegation keys only with --oauth basic, over HTTPS,
// and to a production-style host (ACCOUNT.blob.localhost): the SDK takes the
// account name from the host's first label. It checks a bearer token's
// issuer, audience and lifetime but not its signature.

// fakeEntraToken is a TokenCredential for Azurite's basic OAuth check.
type fakeEntraToken struct{}

func (fakeEntraToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	now := time.Now()
	part := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	tok := part(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + part(map[string]any{
		"aud": "https://storage.azure.com",
		"iss": "https://sts.windows.net/" + tenant + "/",
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"oid": "11059fcc-5514-4800-b5f8-49808b9cfab6", "tid": tenant,
	}) + ".c2lnbmF0dXJl"
	return azcore.AccessToken{Token: tok, ExpiresOn: now.Add(time.Hour)}, nil
}

// oauthAzurite is a second Azurite with OAuth on HTTPS, reached through
// a production-style host name that the client dials on loopback.
type oauthAzurite struct {
	serviceURL string
	opts       azcore.ClientOptions
}

func startOAuthAzurite(t *testing.T) *oauthAzurite {
	t.Helper()
	ondemand.SkipShort(t)
	const host = azurite.AccountName + ".blob.localhost"
	cert, err := devcert.New("azurite", 2*time.Hour, host)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	var chain bytes.Buffer
	for _, der := range cert.Server.Certificate {
		pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.Server.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, chain.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a, err := azurite.Start(ctx, azurite.Options{Args: []string{"--oauth", "basic", "--cert", certPath, "--key", keyPath}})
	if err != nil {
		t.Fatalf("start Azurite with OAuth: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Errorf("stop Azurite: %v", err)
		}
	})
	u, err := url.Parse(a.BlobURL())
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" {
		t.Fatalf("Azurite with a certificate listens at %s, want https", a.BlobURL())
	}
	// Any name goes to Azurite's loopback port; TLS still checks the name.
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: cert.Pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, u.Host)
		},
	}
	t.Cleanup(transport.CloseIdleConnections)
	return &oauthAzurite{
		serviceURL: "https://" + host + ":" + u.Port(),
		opts:       azcore.ClientOptions{Transport: &http.Client{Transport: transport}},
	}
}

func (o *oauthAzurite) service(t *testing.T) *service.Client {
	t.Helper()
	svc, err := service.NewClient(o.serviceURL, fakeEntraToken{}, &service.ClientOptions{ClientOptions: o.opts})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// countingKeys counts key requests and can be made to fail.
type countingKeys struct {
	keyGetter
	calls atomic.Int32
	fail  atomic.Bool
}

func (k *countingKeys) GetUserDelegationCredential(ctx context.Context, info service.KeyInfo, o *service.GetUserDelegationCredentialOptions) (*service.UserDelegationCredential, error) {
	k.calls.Add(1)
	if k.fail.Load() {
		return nil, errors.New("identity endpoint unavailable")
	}
	return k.keyGetter.GetUserDelegationCredential(ctx, info, o)
}

func TestUserDelegation(t *testing.T) {
	oa := startOAuthAzurite(t)
	svc := oa.service(t)

	t.Run("grant allows create, read and list only in its container", func(t *testing.T) {
		own, other := uniqueName("own"), uniqueName("other")
		createContainers(t, svc, own, other)
		for _, c := range []string{own, other} {
			if _, err := svc.NewContainerClient(c).NewBlockBlobClient("existing").UploadBuffer(t.Context(), []byte("original"), nil); err != nil {
				t.Fatal(err)
			}
		}
		g, err := NewUserDelegation(svc, oa.serviceURL, time.Now).Container(t.Context(), own, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		q := sasQuery(t, g)
		if q.Get("spr") != "https" || q.Get("sp") != Permissions || q.Get("skoid") == "" {
			t.Fatalf("SAS %s: want spr=https, sp=%s and a user delegation key (skoid)", g.SAS, Permissions)
		}
		checkGrant(t, g, other, &container.ClientOptions{ClientOptions: oa.opts})
	})

	t.Run("expired grant is refused", func(t *testing.T) {
		name := uniqueName("expired")
		createContainers(t, svc, name)
		g, err := NewUserDelegation(svc, oa.serviceURL, newClock(time.Now().Add(-2*time.Hour)).Now).Container(t.Context(), name, MaxTTL)
		if err != nil {
			t.Fatal(err)
		}
		c, err := container.NewClientWithNoCredential(g.URL(), &container.ClientOptions{ClientOptions: oa.opts})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.NewListBlobsFlatPager(nil).NextPage(t.Context()); statusOf(err) != http.StatusForbidden {
			t.Fatalf("list with an expired SAS: got %v, want 403", err)
		}
	})

	t.Run("key is cached and renewed with half its life left", func(t *testing.T) {
		t0 := time.Now()
		clk := newClock(t0)
		keys := &countingKeys{keyGetter: svc}
		i := newUserDelegation(keys, oa.serviceURL, clk.Now)
		for _, step := range []struct {
			at    time.Duration
			calls int32
		}{
			{0, 1},
			{time.Minute, 1},
			{11 * time.Hour, 1},
			{12*time.Hour + time.Second, 2}, // less than 12 h left: renew
			{13 * time.Hour, 2},
			{-time.Hour, 3}, // clock went back before the key's start
		} {
			clk.Set(t0.Add(step.at))
			if _, err := i.Container(t.Context(), "box", time.Hour); err != nil {
				t.Fatalf("at +%v: %v", step.at, err)
			}
			if got := keys.calls.Load(); got != step.calls {
				t.Fatalf("at +%v: %d key requests, want %d", step.at, got, step.calls)
			}
		}
	})

	t.Run("concurrent callers share one key request", func(t *testing.T) {
		keys := &countingKeys{keyGetter: svc}
		i := newUserDelegation(keys, oa.serviceURL, time.Now)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for range 32 {
			wg.Go(func() {
				if _, err := i.Container(t.Context(), "box", time.Hour); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := keys.calls.Load(); got != 1 {
			t.Fatalf("%d key requests, want 1", got)
		}
	})

	t.Run("failed renewal falls back to the cached key while it covers the grant", func(t *testing.T) {
		name := uniqueName("renew")
		createContainers(t, svc, name)
		t0 := time.Now()
		clk := newClock(t0)
		keys := &countingKeys{keyGetter: svc}
		i := newUserDelegation(keys, oa.serviceURL, clk.Now)
		if _, err := i.Container(t.Context(), name, time.Hour); err != nil {
			t.Fatal(err)
		}
		keys.fail.Store(true)
		clk.Set(t0.Add(20 * time.Hour)) // renewal due, old key good for 4 h more
		g, err := i.Container(t.Context(), name, time.Hour)
		if err != nil {
			t.Fatalf("grant while renewal fails: %v", err)
		}
		if keys.calls.Load() != 2 {
			t.Fatalf("%d key requests, want a renewal attempt", keys.calls.Load())
		}
		clk.Set(t0.Add(20*time.Hour + 30*time.Second))
		if _, err := i.Container(t.Context(), name, time.Hour); err != nil || keys.calls.Load() != 2 {
			t.Fatalf("within a minute of a failed renewal: %v, %d key requests; want the cached key and no new request", err, keys.calls.Load())
		}
		clk.Set(t0.Add(20*time.Hour + 2*time.Minute))
		if _, err := i.Container(t.Context(), name, time.Hour); err != nil || keys.calls.Load() != 3 {
			t.Fatalf("a minute after a failed renewal: %v, %d key requests; want another attempt", err, keys.calls.Load())
		}
		if g.ExpiresOn.After(t0.Add(24 * time.Hour)) {
			t.Fatalf("grant outlives its key")
		}
		clk.Set(t0.Add(23*time.Hour + 30*time.Minute)) // a 1 h grant would outlive the key
		if _, err := i.Container(t.Context(), name, time.Hour); err == nil || !strings.Contains(err.Error(), "managed identity") {
			t.Fatalf("grant past the key's expiry: got %v, want an error naming the managed identity", err)
		}
		keys.fail.Store(false)
		g, err = i.Container(t.Context(), name, time.Hour)
		if err != nil {
			t.Fatalf("after the identity recovers: %v", err)
		}
		if keys.calls.Load() != 5 {
			t.Fatalf("%d key requests, want 5", keys.calls.Load())
		}
	})
}

// newClock is the test's clock, which it moves by hand.
func newClock(t time.Time) *clocktest.Fake { return clocktest.New(t) }
