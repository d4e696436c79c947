package agent

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/wire"
)

// rbacVault is a Key Vault emulator enforcing the deployed design: Azure
// RBAC with a principal per bearer token, purge protection, the control
// plane as the registration delegate under its condition, and an admin
// (Secrets Officer on the vault) to look at what the machines did.
type rbacVault struct {
	*keyvault.Server
	caBundle string // SSL_CERT_FILE trusting the stack's and this vault's CAs
	admin    *azsecrets.Client
	cpToken  string // the control plane's token, for the delegate's calls
}

const controlPlaneOID = "cccccccc-0000-4000-8000-00000000000c"

func newRBACVault(t *testing.T) *rbacVault {
	t.Helper()
	kv, err := keyvault.Start(keyvault.Options{PurgeProtection: true, Access: &keyvault.Access{Delegates: []keyvault.Delegate{{
		PrincipalID: controlPlaneOID, Roles: []string{keyvault.RoleMachinePassphrase},
		PrincipalTypes: []string{"ServicePrincipal"}, NotPrincipals: []string{controlPlaneOID},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	stackCA, err := os.ReadFile(st.CACertPath)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, append(stackCA, kv.CACertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	const adminID = "dddddddd-0000-4000-8000-00000000000d"
	if err := kv.Assign(keyvault.RoleAssignment{PrincipalID: adminID, RoleID: keyvault.RoleSecretsOfficer, Scope: "/"}); err != nil {
		t.Fatal(err)
	}
	tok, err := kv.NewToken(adminID)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := azsecrets.NewClient(kv.URL(), keyvault.TokenCredential(tok), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	cpToken, err := kv.NewToken(controlPlaneOID)
	if err != nil {
		t.Fatal(err)
	}
	return &rbacVault{Server: kv, caBundle: bundle, admin: admin, cpToken: cpToken}
}

// world is a control plane using this vault. With delegate, it assigns
// each registering machine its role, as deployed; without, an admin must.
func (kv *rbacVault) world(t *testing.T, delegate bool) *world {
	return newWorld(t, func(env map[string]string) {
		env[config.KeyVaultURL] = kv.URL()
		if delegate {
			env[config.KeyVaultResourceID] = keyvault.DefaultResourceID
			env[config.KeyVaultMachineRole] = keyvault.RoleMachinePassphrase
			env[config.ARMEndpoint] = kv.URL()
			env[config.ARMToken] = kv.cpToken
			env["SSL_CERT_FILE"] = kv.caBundle
		}
	})
}

// identity is a machine's Entra identity in the emulator: its object ID
// and the token its agent presents.
type identity struct{ ObjectID, Token string }

func (kv *rbacVault) identity(t *testing.T, objectID string) identity {
	t.Helper()
	tok, err := kv.NewToken(objectID)
	if err != nil {
		t.Fatal(err)
	}
	return identity{objectID, tok}
}

// cofferAs runs the agent on machine m signed in to Key Vault as id.
func (m *machine) cofferAs(kv *rbacVault, id identity, args ...string) *exec.Cmd {
	cmd := exec.Command(coffer, append(args, "--config-dir", m.Dir)...)
	cmd.Env = append(stack.AgentEnv(m.w.env, m.Dir), "SSL_CERT_FILE="+kv.caBundle, vault.EnvKeyVaultToken+"="+id.Token)
	return cmd
}

func runCmd(cmd *exec.Cmd) (string, string, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// registerAs registers a machine whose identity is id; the control plane
// assigns it its role on its new secret.
func (w *world) registerAs(kv *rbacVault, name string, id identity) (*machine, string) {
	w.t.Helper()
	dir := w.t.TempDir()
	m := &machine{w: w, Dir: filepath.Join(dir, "config")}
	out, errOut, err := runCmd(m.cofferAs(kv, id, "register", "--credentials", w.credentials(dir), "--name", name, "--json"))
	if err != nil {
		w.t.Fatalf("register: %v\n%s%s", err, out, errOut)
	}
	var reg map[string]string
	if err := json.Unmarshal([]byte(out), &reg); err != nil || reg["machineId"] == "" || reg["secretName"] != "coffer-passphrase-"+reg["machineId"] {
		w.t.Fatalf("register --json: %q", out)
	}
	m.ID = reg["machineId"]
	return m, reg["secretName"]
}

// registerGrantedByAdmin registers a machine whose identity is id with a
// control plane that is no delegate. The agent waits for its role on its
// new secret; the test does what an admin does meanwhile: it finds the new
// machine and assigns the Coffer Machine Passphrase role on that one secret
// to the machine's identity.
func (w *world) registerGrantedByAdmin(kv *rbacVault, name string, id identity) (*machine, string) {
	w.t.Helper()
	dir := w.t.TempDir()
	m := &machine{w: w, Dir: filepath.Join(dir, "config")}
	cmd := m.cofferAs(kv, id, "register", "--credentials", w.credentials(dir), "--name", name, "--json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// The machine appears in the vault once the control plane registered it.
	var machineID string
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for machineID == "" {
		select {
		case err := <-exited:
			w.t.Fatalf("register exited before its role was granted: %v\n%s%s", err, out.String(), errb.String())
		case <-tick.C:
		}
		var ms []wire.Machine
		if _, err := w.Admin.Do(w.t.Context(), "GET", "/api/v1/vaults/"+w.Vault.ID+"/machines", nil, &ms); err != nil {
			w.t.Fatal(err)
		}
		for _, x := range ms {
			if x.Name == name {
				machineID = x.ID
			}
		}
	}
	secret := "coffer-passphrase-" + machineID
	if err := kv.Assign(keyvault.RoleAssignment{PrincipalID: id.ObjectID, RoleID: keyvault.RoleMachinePassphrase, Scope: "/secrets/" + secret}); err != nil {
		w.t.Fatal(err)
	}
	if err := <-exited; err != nil {
		w.t.Fatalf("register: %v\n%s%s", err, out.String(), errb.String())
	}
	var reg map[string]string
	if err := json.Unmarshal(out.Bytes(), &reg); err != nil || reg["machineId"] != machineID || reg["secretName"] != secret {
		w.t.Fatalf("register --json: %q (want machine %s, secret %s)", out.String(), machineID, secret)
	}
	m.ID = machineID
	return m, secret
}

// Issue 10 row 10: a compromised machine must not reach another machine's
// passphrase. Two real agents, each with its own identity, register against
// a Key Vault enforcing the deployed roles, where the control plane assigns
// each its role on its own secret. Machine A's credentials cannot
// read B's passphrase, neither through a restore from B nor with a
// registration tampered to name B's secret, and B's secret keeps exactly
// the one version B wrote. A restore of B's data onto A works only with
// B's passphrase handed over by an admin.
func TestMachineCannotReadAnotherMachinesPassphrase(t *testing.T) {
	kv := newRBACVault(t)
	w := kv.world(t, true)
	idA := kv.identity(t, "aaaaaaaa-0000-4000-8000-00000000000a")
	idB := kv.identity(t, "bbbbbbbb-0000-4000-8000-00000000000b")
	a, _ := w.registerAs(kv, "branch-a", idA)
	b, secretB := w.registerAs(kv, "branch-b", idB)

	// B backs up with its escrowed passphrase: a machine reads its own.
	src := filepath.Join(t.TempDir(), "payroll")
	if err := makeTree(t, src, 8); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(b, src)
	if out, errOut, err := runCmd(b.cofferAs(kv, idB, "backup")); err != nil {
		t.Fatalf("backup on B: %v\n%s%s", err, out, errOut)
	}
	passB, err := kv.admin.GetSecret(t.Context(), secretB, "", nil)
	if err != nil {
		t.Fatal(err)
	}

	// An Operator lets A restore B's data; A's identity still cannot read
	// B's passphrase, and says what to do instead.
	if _, err := w.Admin.Do(t.Context(), "POST", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+a.ID+"/restore-grant", wire.RestoreGrant{Source: "branch-b"}, nil); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "from-b")
	out, errOut, err := runCmd(a.cofferAs(kv, idA, "restore", "latest", "--from-machine", "branch-b", "--target", target))
	if err == nil || !strings.Contains(errOut, "Key Vault refused") || !strings.Contains(errOut, idA.ObjectID) ||
		!strings.Contains(errOut, "--source-passphrase-file") {
		t.Fatalf("restore of B on A with A's identity: %v\n%s%s", err, out, errOut)
	}
	if strings.Contains(out+errOut, *passB.Value) {
		t.Fatal("B's passphrase reached A")
	}

	// A compromised A that points its registration at B's secret is refused
	// the same way.
	cfgPath := filepath.Join(a.Dir, "agent.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var c vault.Config
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	c.SecretName = secretB
	tampered, _ := json.Marshal(c)
	if err := os.WriteFile(cfgPath, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = runCmd(a.cofferAs(kv, idA, "points"))
	if err == nil || !strings.Contains(errOut, "Key Vault refused") || strings.Contains(out+errOut, *passB.Value) {
		t.Fatalf("A reading B's secret through a tampered registration: %v\n%s%s", err, out, errOut)
	}
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	// B's secret is untouched: the one version B escrowed.
	n := 0
	for pager := kv.admin.NewListSecretPropertiesVersionsPager(secretB, nil); pager.More(); {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Fatalf("B's secret has %d versions, want the 1 B wrote", n)
	}

	// With B's passphrase from an admin, the restore works.
	passFile := filepath.Join(t.TempDir(), "b.pass")
	if err := os.WriteFile(passFile, []byte(*passB.Value), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := runCmd(a.cofferAs(kv, idA, "restore", "latest", "--from-machine", "branch-b", "--target", target,
		"--source-passphrase-file", passFile)); err != nil {
		t.Fatalf("restore of B on A with B's passphrase: %v\n%s%s", err, out, errOut)
	}
}

// Where the control plane is no delegate, a registering machine waits for
// an admin to assign its role, then escrows and backs up.
func TestRegistrationWaitsForAnAdminsGrant(t *testing.T) {
	kv := newRBACVault(t)
	w := kv.world(t, false)
	id := kv.identity(t, "aaaaaaaa-0000-4000-8000-0000000000a2")
	m, secret := w.registerGrantedByAdmin(kv, "branch-by-hand", id)
	if _, err := kv.admin.GetSecret(t.Context(), secret, "", nil); err != nil {
		t.Fatalf("the passphrase is not in escrow: %v", err)
	}
	src := filepath.Join(t.TempDir(), "data")
	if err := makeTree(t, src, 3); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(m, src)
	if out, errOut, err := runCmd(m.cofferAs(kv, id, "backup")); err != nil {
		t.Fatalf("backup: %v\n%s%s", err, out, errOut)
	}
}

// Without its role, a newly registered machine waits, then fails with the
// command an admin can run, instead of creating a repository whose
// passphrase nobody holds in escrow.
func TestRegistrationWithoutAGrantSaysWhatToDo(t *testing.T) {
	kv := newRBACVault(t)
	w := kv.world(t, false)
	id := kv.identity(t, "eeeeeeee-0000-4000-8000-00000000000e")
	dir := t.TempDir()
	m := &machine{w: w, Dir: filepath.Join(dir, "config")}
	cmd := m.cofferAs(kv, id, "register", "--credentials", w.credentials(dir), "--name", "branch-ungranted")
	cmd.Env = append(cmd.Env, vault.EnvGrantWait+"=1s")
	out, errOut, err := runCmd(cmd)
	if err == nil {
		t.Fatalf("register without a role succeeded:\n%s%s", out, errOut)
	}
	for _, want := range []string{"Key Vault refused", id.ObjectID, `--role "Coffer Machine Passphrase (`, "az role assignment create", "run `coffer register` again"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("register's error does not mention %s:\n%s", want, errOut)
		}
	}
	// Nothing is left that would stop the next attempt.
	for _, f := range []string{"agent.json", "machine.key"} {
		if _, err := os.Stat(filepath.Join(m.Dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s is left after the failed registration: %v", f, err)
		}
	}
}
