package adversary

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/proc"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// controlPlane is a coffer-functions process on the stack.
type controlPlane struct {
	name string
	url  string
	p    *proc.Process
}

// env is the stack's settings plus the RBAC Key Vault the adversary
// fixture adds; StartControlPlane adds the role tokens, the dev clock and
// the rest.
func (f *fixture) env() []string {
	return append(f.st.Environ(),
		stack.EnvKeyVault+"="+f.kv.URL(),
		stack.EnvSSLCertFile+"="+f.kvCAPath,
		config.KeyVaultResourceID+"="+keyvault.DefaultResourceID,
		config.KeyVaultMachineRole+"="+keyvault.RoleMachinePassphrase,
		config.ARMEndpoint+"="+f.kv.URL(),
		config.ARMToken+"="+f.cpKVToken,
	)
}

// startControlPlane runs coffer-functions on a free loopback port.
// Standalone it runs its timers and sends alert email itself; otherwise it
// also answers the invocations the Functions host posts (POST /<Function>),
// which is how a test runs a timer at a moved time.
func (f *fixture) startControlPlane(ctx context.Context, name string, standalone bool) (*controlPlane, error) {
	p, url, _, err := stack.StartControlPlane(ctx, stack.ControlPlane{
		Name: name, Path: filepath.Join(f.bin, "coffer-functions"), StackEnv: f.env(), Standalone: standalone,
		Tokens:  stack.RoleTokens{Contributor: contributorToken, Operator: operatorToken, Reader: readerToken, SecurityAdmin: securityAdminToken},
		LogPath: filepath.Join(f.dir, name+".log"),
	})
	if err != nil {
		if p != nil {
			p.Stop(10 * time.Second)
		}
		return nil, err
	}
	return &controlPlane{name: name, url: url, p: p}, nil
}

func (c *controlPlane) stop() { c.p.Stop(10 * time.Second) }

// timeMachine is a second control plane on the same tables, in host mode,
// whose clock a test moves: timers run there at the moved time, while
// agents keep signing against the standalone one on the real clock. It is
// stopped when the test ends, so no moved clock outlives its test.
func timeMachine(t *testing.T) *controlPlane {
	t.Helper()
	c, err := fx.startControlPlane(t.Context(), "time-machine-"+strings.ReplaceAll(t.Name(), "/", "-"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	return c
}

// admin is a contributor client on this control plane.
func (c *controlPlane) admin() *cpclient.Client {
	return &cpclient.Client{BaseURL: c.url, Token: contributorToken}
}

// advance moves the clock forward and returns the new time.
func (c *controlPlane) advance(t *testing.T, d time.Duration) time.Time {
	t.Helper()
	var out struct {
		Now time.Time `json:"now"`
	}
	if _, err := c.admin().Do(t.Context(), "POST", wire.Version+"/dev/clock", map[string]string{"advance": d.String()}, &out); err != nil {
		t.Fatalf("move the clock of %s: %v", c.name, err)
	}
	return out.Now
}

// invoke plays the Functions host: it posts a timer invocation and returns
// the status and the logs of the answer.
func (c *controlPlane) invoke(t *testing.T, function string) (int, string) {
	t.Helper()
	now := time.Now().UTC()
	body, _ := json.Marshal(map[string]any{
		"Data": map[string]any{"timer": map[string]any{
			"Schedule":       map[string]any{"AdjustForDST": true},
			"ScheduleStatus": map[string]any{"Last": now.Add(-24 * time.Hour), "Next": now, "LastUpdated": now.Add(-24 * time.Hour)},
			"IsPastDue":      false,
		}},
		"Metadata": map[string]any{"sys": map[string]any{"MethodName": function, "UtcNow": now}},
	})
	resp, err := http.Post(c.url+"/"+function, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("invoke %s: %v", function, err)
	}
	defer resp.Body.Close()
	var reply struct {
		Logs []string `json:"Logs"`
	}
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &reply)
	return resp.StatusCode, strings.Join(reply.Logs, " ")
}

// machine is a registered agent: its config folder, its Key Vault
// principal and its signing key.
type machine struct {
	f         *fixture
	name      string
	id        string
	dir       string // --config-dir
	secret    string // its passphrase's Key Vault secret
	container string
	kvToken   string // its Key Vault principal's bearer token
	kvOID     string
	key       ed25519.PrivateKey
	src       string // the folder its policy backs up
}

// register registers a machine with a real `coffer register`, as an admin
// installs it: the machine has its own Key Vault identity, and the control
// plane, as the registration delegate, gives it the machine role on its
// own secret before the agent escrows its passphrase there.
func (f *fixture) register(ctx context.Context, v wire.Vault, name string) (*machine, error) {
	m := &machine{f: f, name: name, dir: filepath.Join(f.dir, "agents", v.Name, name), kvOID: randomGUID()}
	var err error
	if m.kvToken, err = f.kv.NewToken(m.kvOID); err != nil {
		return nil, err
	}
	var cr wire.Credentials
	if _, err := f.contributor.Do(ctx, "POST", wire.Version+"/vaults/"+v.ID+"/credentials", nil, &cr); err != nil {
		return nil, fmt.Errorf("download credentials: %w", err)
	}
	credFile := filepath.Join(f.dir, "credentials-"+name+".json")
	b, _ := json.Marshal(cr)
	if err := os.WriteFile(credFile, b, 0o600); err != nil {
		return nil, err
	}
	out, err := m.coffer(ctx, "register", "--credentials", credFile, "--name", name, "--json")
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	var reg map[string]string
	if err := json.Unmarshal([]byte(out), &reg); err != nil {
		return nil, fmt.Errorf("register %s --json printed %q", name, out)
	}
	m.id, m.secret, m.container = reg["machineId"], reg["secretName"], reg["container"]
	if m.key, err = loadKey(m.dir); err != nil {
		return nil, err
	}
	return m, nil
}

// loadKey reads the machine's Ed25519 key from its config folder, as an
// attacker who owns the machine can.
func loadKey(dir string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(dir, "machine.key"))
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("machine.key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("machine.key is not Ed25519")
	}
	return priv, nil
}

// coffer runs the real agent for this machine and returns its standard
// output; an error carries its standard error.
func (m *machine) coffer(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(m.f.bin, "coffer"), append(args, "--config-dir", m.dir)...)
	cmd.Env = append(os.Environ(), m.f.st.Environ()...)
	cmd.Env = append(cmd.Env,
		stack.EnvKeyVault+"="+m.f.kv.URL(),
		stack.EnvSSLCertFile+"="+m.f.kvCAPath,
		"COFFER_KEYVAULT_TOKEN="+m.kvToken,
		"COFFER_KEYVAULT_GRANT_WAIT=2m",
		"COFFER_CONTROL_PLANE_URL=", "COFFER_ADMIN_TOKEN=",
		"COFFER_PASSPHRASE=", "COFFER_REPOSITORY=", "COFFER_TEST_CLOCK=", "COFFER_CONFIG_DIR=", "COFFER_LOG_DIR=",
		"XDG_CACHE_HOME="+filepath.Join(m.f.dir, "cache", m.name),
	)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("coffer %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// backup runs an on-demand backup and returns its point.
func (m *machine) backup(ctx context.Context) (string, error) {
	out, err := m.coffer(ctx, "backup", "--json")
	if err != nil {
		return "", err
	}
	var sum struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.ID == "" || sum.Status != wire.StatusCompleted {
		return "", fmt.Errorf("backup of %s printed %q", m.name, out)
	}
	return sum.ID, nil
}

// agent is the machine's own signed client, as an attacker holding its key
// uses it, against cp.
func (m *machine) agent(cp *controlPlane) *cpclient.Client {
	return &cpclient.Client{BaseURL: cp.url, MachineID: m.id, Key: m.key}
}

// sas asks the control plane for the machine's storage grant.
func (m *machine) sas(t *testing.T) wire.SAS {
	t.Helper()
	var g wire.SAS
	if _, err := m.agent(fx.cp).Do(t.Context(), "POST", wire.Version+"/agent/sas", nil, &g); err != nil {
		t.Fatalf("SAS for %s: %v", m.name, err)
	}
	return g
}

// upload creates a blob in the machine's container with its own SAS, as
// the attacker on the machine can.
func (m *machine) upload(t *testing.T, name string, data []byte) error {
	t.Helper()
	g := m.sas(t)
	c, err := container.NewClientWithNoCredential(g.ContainerURL+"?"+g.SAS, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.NewBlockBlobClient(name).UploadBuffer(t.Context(), data, nil)
	return err
}

// blobs lists the machine's container with the account key, as the
// storage account's owner sees it.
func (m *machine) blobs(t *testing.T, prefix string) map[string][]byte {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(fx.st.Azurite.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	pager := c.NewListBlobsFlatPager(m.container, &azblob.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatalf("list %s/%s: %v", m.container, prefix, err)
		}
		for _, b := range page.Segment.BlobItems {
			resp, err := c.DownloadStream(t.Context(), m.container, *b.Name, nil)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out[*b.Name] = data
		}
	}
	return out
}

// quarantined reports whether the control plane marked an object as set
// aside (metadata on the blob; it is left in place for inspection).
func (m *machine) quarantined(t *testing.T, name string) bool {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(fx.st.Azurite.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	props, err := c.ServiceClient().NewContainerClient(m.container).NewBlobClient(name).GetProperties(t.Context(), nil)
	if err != nil {
		t.Fatalf("properties of %s: %v", name, err)
	}
	for k := range props.Metadata {
		if strings.Contains(strings.ToLower(k), "quarantin") {
			return true
		}
	}
	return false
}

// assignLongPolicy gives the machine a 180-day daily policy that backs up
// its source folder.
func (f *fixture) assignLongPolicy(ctx context.Context, m *machine) error {
	p := policy.Default("UTC")
	p.Retention.DailyDays = 180
	p.Include = []string{m.src}
	name := "long-" + m.name
	if _, err := f.contributor.Do(ctx, "PUT", wire.Version+"/vaults/"+f.vault.ID+"/policies/"+name, p, nil); err != nil {
		return fmt.Errorf("policy %s: %w", name, err)
	}
	if _, err := f.contributor.Do(ctx, "PUT", wire.Version+"/vaults/"+f.vault.ID+"/machines/"+m.id+"/policy", wire.AssignPolicy{Policy: name}, nil); err != nil {
		return fmt.Errorf("assign %s to %s: %w", name, m.name, err)
	}
	return nil
}

// changeFiles edits, adds and removes a file, so the next backup differs.
func changeFiles(dir string, n int) error {
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 2 {
		return fmt.Errorf("too few files in %s", dir)
	}
	slices.Sort(files)
	if err := os.WriteFile(files[0], fmt.Appendf(nil, "edited before backup %d\n", n), 0o644); err != nil {
		return err
	}
	if err := os.Remove(files[len(files)-1]); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, fmt.Sprintf("added-%d.txt", n)), fmt.Appendf(nil, "added before backup %d\n", n), 0o644)
}

// copyTree copies a folder with its metadata (cp -a), as it was when
// backed up.
func copyTree(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s: %v: %s", src, err, out)
	}
	return nil
}

// newPIN asks cp for a security PIN of the vault.
func newPIN(t *testing.T, c *cpclient.Client, vaultID string) string {
	t.Helper()
	var p wire.PIN
	if _, err := c.Do(t.Context(), "POST", wire.Version+"/vaults/"+vaultID+"/pin", nil, &p); err != nil {
		t.Fatalf("generate a PIN: %v", err)
	}
	return p.PIN
}

func pinHeader(pin string) http.Header { return http.Header{wire.PINHeader: {pin}} }

// alerts lists a vault's alerts.
func alerts(t *testing.T, c *cpclient.Client, vaultID string) []wire.Alert {
	t.Helper()
	var as []wire.Alert
	if _, err := c.Do(t.Context(), "GET", wire.Version+"/vaults/"+vaultID+"/alerts", nil, &as); err != nil {
		t.Fatalf("list alerts: %v", err)
	}
	return as
}

// points lists a machine's points (with the deleted ones when deleted).
func points(t *testing.T, c *cpclient.Client, vaultID, machineID string, deleted bool) []wire.Point {
	t.Helper()
	var ps []wire.Point
	path := wire.Version + "/vaults/" + vaultID + "/machines/" + machineID + "/points"
	if deleted {
		path += "?deleted=include"
	}
	if _, err := c.Do(t.Context(), "GET", path, nil, &ps); err != nil {
		t.Fatalf("list points: %v", err)
	}
	return ps
}

// status is the HTTP status of a failed API call, or 0.
func status(err error) int {
	var se *cpclient.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// waitFor polls cond until it holds or the test's context ends; what
// describes what is awaited, for the failure.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s after %s", what, timeout)
		case <-tick.C:
		}
	}
}

// serverErrors returns the first n errors the standalone control plane
// logged, for a failure message.
func serverErrors(n int) string {
	b, _ := os.ReadFile(filepath.Join(fx.dir, fx.cp.name+".log"))
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
			if len(out) == n {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// sasPermissions is the sp= of a SAS query.
func sasPermissions(t *testing.T, sas string) string {
	t.Helper()
	q, err := url.ParseQuery(sas)
	if err != nil {
		t.Fatalf("SAS %q: %v", sas, err)
	}
	return q.Get("sp")
}
