package controlplane

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/proc"
	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// The real coffer-functions binary, started as the Functions host starts a
// custom handler, answers the host's requests: forwarded HTTP requests, and
// timer and Service Bus invocations in the recorded payload shapes, with
// {Outputs, Logs, ReturnValue}.
func TestBinaryAnswersTheFunctionsHost(t *testing.T) {
	// The emulators, and the tables: under the host the binary does not
	// create them (in Azure the Bicep does), an in-process control plane does.
	newCP(t, cpOptions{})
	dir := t.TempDir()
	bin := filepath.Join(dir, "coffer-functions")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/coffer-backup/coffer/functions/cmd/coffer-functions").CombinedOutput(); err != nil {
		t.Fatalf("build coffer-functions: %v\n%s", err, out)
	}
	sink, err := smtpsink.Start(smtpsink.Options{})
	must(t, err)
	defer sink.Close()

	port := freePort(t)
	ready := regexp.MustCompile(`coffer-functions listening on (http://\S+)`)
	var base string
	p, err := proc.Start(ctxT(t), proc.Spec{
		Name: "coffer-functions", Path: bin, LogPath: filepath.Join(dir, "log"),
		Env: []string{
			config.Port + "=" + port,
			config.StorageConnection + "=" + emu.ConnectionString(),
			config.ServiceBusConnection + "=" + sb.ConnectionString(),
			config.AlertsQueue + "=queue.1",
			config.KeyVaultURL + "=https://127.0.0.1:1/",
			config.PublicURL + "=http://127.0.0.1:" + port,
			config.TokenContributor + "=" + contributorToken,
			config.SMTPHost + "=" + sink.Host(), config.SMTPPort + "=" + sink.Port(), config.SMTPSecurity + "=none",
		},
		Ready: func(line string) bool {
			if m := ready.FindStringSubmatch(line); m != nil {
				base = m[1]
				return true
			}
			return false
		},
	})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("start: %v\n%s", err, log)
	}
	defer p.Stop(10 * time.Second)
	if base != "http://127.0.0.1:"+port {
		t.Fatalf("listening on %s, want port %s from %s", base, port, config.Port)
	}
	ctx := ctxT(t)

	// HTTP: the host forwards the request unchanged.
	admin := &cpclient.Client{BaseURL: base, Token: contributorToken}
	var v wire.Vault
	_, err = admin.Do(ctx, "POST", "/api/v1/vaults", wire.NewVault{Name: "host", AlertRecipients: []string{"ops@host.example"}}, &v)
	must(t, err)

	// Timers: the recorded payload, to each timer function.
	timer, err := os.ReadFile("../../functions/triggers/testdata/timer.json")
	must(t, err)
	for _, name := range []string{"PurgeSoftDeleted", "EnforceRetention", "MonitorBackups", "SendAlertDigest"} {
		status, reply := invoke(t, base+"/"+name, timer)
		if status != 200 {
			t.Fatalf("%s: %d %v", name, status, reply)
		}
	}

	// Service Bus: an alert message as the host delivers it, its string body
	// JSON-encoded a second time.
	alert := wire.Alert{ID: "a-1", VaultID: v.ID, VaultName: v.Name, MachineName: "branch-01", Severity: wire.SeverityCritical,
		Kind: wire.AlertJobFailed, Title: "Backup failed on branch-01", Detail: "disk read error", RaisedAt: time.Now().UTC()}
	status, reply := invoke(t, base+"/SendAlertEmail", serviceBusPayload(t, alert, 1))
	if status != 200 {
		t.Fatalf("SendAlertEmail: %d %v", status, reply)
	}
	msgs, err := sink.Wait(ctx, 1)
	must(t, err)
	if !strings.Contains(msgs[0].Subject, "branch-01") || msgs[0].To[0] != "ops@host.example" {
		t.Fatalf("email: %q to %v", msgs[0].Subject, msgs[0].To)
	}
	// A message that can never be handled fails the invocation, with the
	// reason in Logs, so the host retries and then dead-letters it.
	status, reply = invoke(t, base+"/SendAlertEmail", serviceBusPayload(t, map[string]string{"nonsense": "yes"}, 1))
	if status != 500 || !strings.Contains(strings.Join(reply.Logs, " "), "alert") {
		t.Fatalf("poison: %d %+v", status, reply)
	}
	// A malformed invocation is the host's bug, not ours: 400, no panic.
	status, _ = invoke(t, base+"/PurgeSoftDeleted", []byte(`{"Data":`))
	if status != 400 {
		t.Fatalf("malformed invocation: %d", status)
	}
}

type invocationReply struct {
	Outputs     map[string]any
	Logs        []string
	ReturnValue any
}

// invoke posts an invocation and checks the reply has exactly the keys the
// host expects.
func invoke(t *testing.T, url string, payload []byte) (int, invocationReply) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(payload))
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 400 {
		return 400, invocationReply{}
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatalf("%s: reply is not JSON: %s", url, b)
	}
	if len(keys) != 3 || keys["Outputs"] == nil || keys["Logs"] == nil || keys["ReturnValue"] == nil {
		t.Fatalf("%s: reply keys %s, want Outputs, Logs, ReturnValue", url, b)
	}
	var r invocationReply
	must(t, json.Unmarshal(b, &r))
	return resp.StatusCode, r
}

// serviceBusPayload is the host's Service Bus invocation for body.
func serviceBusPayload(t *testing.T, body any, deliveryCount int) []byte {
	inner, err := json.Marshal(body)
	must(t, err)
	once, _ := json.Marshal(string(inner)) // the host's second encoding
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	payload := map[string]any{
		"Data": map[string]json.RawMessage{"message": json.RawMessage(q(string(once)))},
		"Metadata": map[string]any{
			"DeliveryCount":   deliveryCount,
			"MessageId":       q("0123456789abcdef"),
			"EnqueuedTimeUtc": q(time.Now().UTC().Format(time.RFC3339)),
			"sys":             map[string]any{"MethodName": "SendAlertEmail", "UtcNow": time.Now().UTC()},
		},
	}
	b, err := json.Marshal(payload)
	must(t, err)
	return b
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
