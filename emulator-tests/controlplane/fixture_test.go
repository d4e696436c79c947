package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/emulator-tests/servicebus"
	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/functions/app"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/clocktest"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Azurite and the Service Bus emulator start with the first test that
// needs them; newCP sets emu and sb.
var (
	emus ondemand.Emulators
	emu  *azurite.Azurite
	sb   *servicebus.Emulator
)

func TestMain(m *testing.M) { os.Exit(emus.Main(m)) }

// Admin tokens of the test control plane, one per role.
const (
	contributorToken = inproc.ContributorToken
	operatorToken    = inproc.OperatorToken
	readerToken      = inproc.ReaderToken
)

// cp is a control plane running in this process against the emulators.
type cp struct {
	t           *testing.T
	App         *app.App
	URL         string
	Clock       *clocktest.Fake // the control plane's clock; tests move it
	Contributor *cpclient.Client
	Operator    *cpclient.Client
	Reader      *cpclient.Client
}

type cpOptions struct {
	SMTP *smtpsink.Sink
	// Queue is the alerts queue; tests that consume alerts use their own
	// ("queue.1") so other tests' alerts do not reach them.
	Queue string
}

func newCP(t *testing.T, o cpOptions) *cp {
	t.Helper()
	emus.Start(t)
	emu, sb = emus.Azurite, emus.ServiceBus
	env := inproc.Env(emu.ConnectionString(), sb.ConnectionString())
	if o.Queue != "" {
		env[config.AlertsQueue] = o.Queue
	}
	if o.SMTP != nil {
		env[config.SMTPHost], env[config.SMTPPort], env[config.SMTPSecurity] = o.SMTP.Host(), o.SMTP.Port(), "none"
		env[config.SMTPFrom] = "coffer@branch.example"
	}
	clock := clocktest.New(time.Now().UTC())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a := inproc.New(t, env, clock.Now, log)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	c := &cp{t: t, App: a, URL: srv.URL, Clock: clock}
	c.Contributor = &cpclient.Client{BaseURL: srv.URL, Token: contributorToken}
	c.Operator = &cpclient.Client{BaseURL: srv.URL, Token: operatorToken}
	c.Reader = &cpclient.Client{BaseURL: srv.URL, Token: readerToken}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantCode asserts an API error with that status and code.
func wantCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	se, ok := err.(*cpclient.StatusError)
	if !ok {
		t.Fatalf("got %v, want %d %s", err, status, code)
	}
	if se.Status != status || se.Body.Code != code {
		t.Fatalf("got %d %s (%s), want %d %s", se.Status, se.Body.Code, se.Body.Message, status, code)
	}
	if se.Body.Message == "" {
		t.Fatalf("error %s has no message", code)
	}
}

// vault creates a vault with multi-user authorization off, so the stories
// of what a PIN allows run as before; approvals_test.go turns it on.
func (c *cp) vault(name string) wire.Vault {
	var v wire.Vault
	off := false
	_, err := c.Contributor.Do(ctxT(c.t), "POST", "/api/v1/vaults", wire.NewVault{Name: name, AlertRecipients: []string{"ops@branch.example"}, MultiUserAuth: &off}, &v)
	must(c.t, err)
	return v
}

func (c *cp) credentials(v wire.Vault) wire.Credentials {
	var cr wire.Credentials
	_, err := c.Operator.Do(ctxT(c.t), "POST", "/api/v1/vaults/"+v.ID+"/credentials", nil, &cr)
	must(c.t, err)
	return cr
}

// agent is a registered machine's client.
type agent struct {
	*cpclient.Client
	Reg wire.Registration
}

func (c *cp) register(cr wire.Credentials, name string) (*agent, error) {
	pub, priv, err := reqsign.NewKey()
	if err != nil {
		return nil, err
	}
	var reg wire.Registration
	anon := &cpclient.Client{BaseURL: c.URL}
	_, err = anon.Do(ctxT(c.t), "POST", "/api/v1/register", wire.Register{VaultID: cr.VaultID, CredentialID: cr.CredentialID,
		Secret: cr.Secret, MachineName: name, PublicKey: reqsign.EncodePublicKey(pub), OS: "linux"}, &reg)
	if err != nil {
		return nil, err
	}
	return &agent{Client: &cpclient.Client{BaseURL: c.URL, MachineID: reg.MachineID, Key: priv, Now: c.Clock.Now}, Reg: reg}, nil
}

func (c *cp) mustRegister(cr wire.Credentials, name string) *agent {
	a, err := c.register(cr, name)
	must(c.t, err)
	return a
}

func (a *agent) sas(t *testing.T) *container.Client {
	var g wire.SAS
	_, err := a.Do(ctxT(t), "POST", "/api/v1/agent/sas", nil, &g)
	must(t, err)
	cc, err := container.NewClientWithNoCredential(g.ContainerURL+"?"+g.SAS, nil)
	must(t, err)
	return cc
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// upload writes a point the way the engine does, through the agent's
// create-only SAS: new packs, the encrypted point (here random bytes) and
// its plaintext pack list.
func upload(t *testing.T, cc *container.Client, point string, packs ...string) {
	t.Helper()
	ctx := ctxT(t)
	put := func(name string, b []byte) {
		if _, err := cc.NewBlobClient(name).GetProperties(ctx, nil); err == nil {
			return // a pack shared with an earlier point, as dedup would reuse
		}
		_, err := cc.NewBlockBlobClient(name).UploadBuffer(ctx, b, nil)
		if err != nil && !isExists(err) {
			t.Fatalf("upload %s: %v", name, err)
		}
	}
	for _, p := range packs {
		body := make([]byte, 1024)
		rand.Read(body)
		put(packrefs.PackName(p), body)
	}
	body := make([]byte, 200)
	rand.Read(body)
	put("points/"+point, body)
	refs, err := packrefs.New(point, packs).Encode()
	must(t, err)
	put(packrefs.Name(point), refs)
}

func isExists(err error) bool {
	return bloberror.HasCode(err, bloberror.BlobAlreadyExists)
}

// backup runs a whole backup job as an agent reports it.
func (a *agent) backup(t *testing.T, cc *container.Client, packs ...string) wire.Point {
	t.Helper()
	ctx := ctxT(t)
	var j wire.Job
	_, err := a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j)
	must(t, err)
	point := randomID()
	upload(t, cc, point, packs...)
	var p wire.Point
	_, err = a.Do(ctx, "POST", "/api/v1/agent/points", wire.NewPoint{ID: point, JobID: j.ID}, &p)
	must(t, err)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs/"+j.ID, wire.JobReport{Status: wire.StatusCompleted, PointID: point,
		Progress: wire.Progress{FilesDone: 1, FilesTotal: 1}}, nil)
	must(t, err)
	return p
}

func blobExists(t *testing.T, cc *container.Client, name string) bool {
	_, err := cc.NewBlobClient(name).GetProperties(ctxT(t), nil)
	if err == nil {
		return true
	}
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return false
	}
	t.Fatalf("stat %s: %v", name, err)
	return false
}

// sasFor is a container client for any container with the given SAS query.
func sasFor(t *testing.T, c *cp, containerName, query string) *container.Client {
	cc, err := container.NewClientWithNoCredential(emu.BlobURL()+"/"+containerName+"?"+query, nil)
	must(t, err)
	return cc
}

func isStatus(err error, code int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

// goodPolicy passes every rule, with security features on.
func goodPolicy() policy.Policy {
	p := policy.Default("Europe/London")
	p.Include = []string{"/srv/data"}
	return p
}

// containerExists asks with the account key, as an administrator would.
func containerExists(t *testing.T, name string) bool {
	cc, err := container.NewClientFromConnectionString(emu.ConnectionString(), name, nil)
	must(t, err)
	_, err = cc.GetProperties(ctxT(t), nil)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return false
	}
	must(t, err)
	return true
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
