package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Names the story uses.
const (
	demoVault     = "branch-offices"
	demoMachine   = "branch-01"
	demoRecipient = "ops@branch.example"
	demoPolicy    = "office"
	sampleFiles   = 40
)

// storySteps are Coffer's story, told with the real coffer and
// coffer-functions executables against the stack.
func storySteps() []demoStep {
	return []demoStep{
		{"Start the control plane on its own", stepControlPlane},
		{"Create a vault and download its credentials", stepVault},
		{"Register the agent " + demoMachine, stepRegister},
		{"Assign a daily policy and back up a sample folder", stepFirstBackup},
		{"Change some files and back up again", stepSecondBackup},
		{"Restore into another folder and compare", stepRestore},
		{"A failed backup emails an alert", stepFailedBackup},
		{"See it in the vault portal", stepPortal},
		{"Delete the data with a PIN, then undelete it", stepDeleteUndelete},
		{"Delete again, move the clock 15 days and purge", stepPurge},
	}
}

func stepControlPlane(ctx context.Context, d *demo) (string, error) {
	d.token = stack.RandomToken()
	url, err := d.startControlPlane(ctx, "coffer-functions", true)
	if err != nil {
		return "", err
	}
	d.cpURL = url
	// The admin CLI answers with the token: the API and its tables are ready.
	var vs []wire.Vault
	if err := d.cofferJSON(ctx, &vs, "admin", "vault", "list"); err != nil {
		return "", err
	}
	link, _, err := portalLink(ctx, url, d.token)
	if err != nil {
		return "", err
	}
	c := d.children()["coffer-functions"]
	return fmt.Sprintf("coffer-functions --standalone (pid %d) listens on %s; it runs its timers and receives the alerts queue itself.\n"+
		"The admin commands use a random Backup Contributor token; the dev clock is on, for the purge.\n"+
		"The vault portal is at %s/portal/ while the demo runs. Follow the story there: %s (a one-time sign-in link as Backup Contributor, valid 10 minutes; docs/portal.md).", c.pid, url, url, link), nil
}

func stepVault(ctx context.Context, d *demo) (string, error) {
	d.recipient = demoRecipient
	if err := d.cofferJSON(ctx, &d.vault, "admin", "vault", "create", demoVault, "--recipient", d.recipient,
		// The demo shows what a PIN does; multi-user authorization (a second
		// admin approving) has its own emulator story.
		"--no-multi-user-auth"); err != nil {
		return "", err
	}
	if !slices.Contains(d.vault.AlertRecipients, d.recipient) || !d.vault.SecurityFeatures {
		return "", fmt.Errorf("vault %s was created with recipients %v and security features %t", d.vault.Name, d.vault.AlertRecipients, d.vault.SecurityFeatures)
	}
	d.credFile = filepath.Join(d.Dir, demoVault+".credentials.json")
	var cr struct {
		File      string    `json:"file"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if err := d.cofferJSON(ctx, &cr, "admin", "credentials", demoVault, "-o", d.credFile); err != nil {
		return "", err
	}
	st, err := os.Stat(d.credFile)
	if err != nil {
		return "", fmt.Errorf("the credentials file was not written: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		return "", fmt.Errorf("the credentials file %s has mode %v, want 0600", d.credFile, st.Mode().Perm())
	}
	return fmt.Sprintf("Created vault %s (ID %s) with security features on; alerts are emailed to %s.\n"+
		"Downloaded its credentials file to %s (owner-only, valid until %s).",
		d.vault.Name, d.vault.ID, d.recipient, d.credFile, cr.ExpiresAt.Local().Format(time.DateTime)), nil
}

func stepRegister(ctx context.Context, d *demo) (string, error) {
	d.configDir = filepath.Join(d.Dir, demoMachine+"-config")
	var reg map[string]string
	if err := d.cofferJSON(ctx, &reg, "register", "--credentials", d.credFile, "--name", demoMachine, "--config-dir", d.configDir); err != nil {
		return "", err
	}
	d.machineID, d.container = reg["machineId"], reg["container"]
	if d.machineID == "" || d.container == "" || reg["secretName"] == "" {
		return "", fmt.Errorf("register answered %v", reg)
	}
	// The passphrase is in Key Vault, where an admin would look for it.
	kv, err := azsecrets.NewClient(d.Stack.KeyVault.URL(), keyvault.Credential(), d.Stack.KeyVault.ClientOptions())
	if err != nil {
		return "", err
	}
	sec, err := kv.GetSecret(ctx, reg["secretName"], "", nil)
	if err != nil {
		return "", fmt.Errorf("read the escrowed passphrase %s from Key Vault: %w", reg["secretName"], err)
	}
	if sec.Value == nil || len(*sec.Value) < 16 {
		return "", fmt.Errorf("Key Vault secret %s holds no passphrase", reg["secretName"])
	}
	return fmt.Sprintf("Registered %s (machine %s) in vault %s; its key pair and settings are in %s.\n"+
		"Its passphrase is escrowed in Key Vault as secret %s (%d characters), written there by the agent; the control plane never sees it.",
		demoMachine, d.machineID, demoVault, d.configDir, reg["secretName"], len(*sec.Value)), nil
}

// backupSummary is the part of `coffer backup --json` the story reads.
type backupSummary struct {
	ID        string `json:"id"`
	JobID     string `json:"jobId"`
	Status    string `json:"status"`
	Files     int64  `json:"files"`
	Bytes     int64  `json:"bytes"`
	BytesRead int64  `json:"bytesRead"`
	Stored    int64  `json:"bytesStored"`
}

// setPolicy writes a policy that includes paths to a JSON file, stores it
// in the vault and assigns it to the machine.
func (d *demo) setPolicy(ctx context.Context, name string, include ...string) (policy.Policy, error) {
	p := policy.Default("Europe/London")
	p.Schedule.Frequency = policy.FrequencyDaily
	p.Schedule.Times = []string{"21:00"}
	p.Include = include
	file := filepath.Join(d.Dir, name+"-policy.json")
	if err := writeJSONFile(file, p); err != nil {
		return p, err
	}
	if _, err := d.coffer(ctx, "admin", "policy", "set", demoVault, name, "-f", file); err != nil {
		return p, err
	}
	if _, err := d.coffer(ctx, "admin", "policy", "assign", demoVault, demoMachine, name); err != nil {
		return p, err
	}
	return p, nil
}

// backup runs an on-demand backup on the machine and checks the admin sees
// its job completed with its point.
func (d *demo) backup(ctx context.Context) (backupSummary, error) {
	var sum backupSummary
	if err := d.cofferJSON(ctx, &sum, "backup", "--config-dir", d.configDir); err != nil {
		return sum, err
	}
	if sum.ID == "" || sum.JobID == "" || sum.Status != "completed" {
		return sum, fmt.Errorf("coffer backup reported point %q, job %q, status %q", sum.ID, sum.JobID, sum.Status)
	}
	var js []wire.Job
	if err := d.cofferJSON(ctx, &js, "admin", "jobs", demoVault, "--machine", demoMachine, "--type", wire.JobBackup); err != nil {
		return sum, err
	}
	i := slices.IndexFunc(js, func(j wire.Job) bool { return j.ID == sum.JobID })
	if i < 0 {
		return sum, fmt.Errorf("`coffer admin jobs` does not list backup job %s", sum.JobID)
	}
	if j := js[i]; j.Status != wire.StatusCompleted || j.PointID != sum.ID || j.Progress.FilesDone != sum.Files {
		return sum, fmt.Errorf("job %s is %s with point %q and %d files; the agent reported point %s and %d files",
			j.ID, j.Status, j.PointID, j.Progress.FilesDone, sum.ID, sum.Files)
	}
	d.points = append(d.points, sum.ID)
	return sum, nil
}

// listedPoints is the machine's recovery points as the admin sees them.
func (d *demo) listedPoints(ctx context.Context, args ...string) ([]wire.Point, error) {
	var ps []wire.Point
	err := d.cofferJSON(ctx, &ps, append([]string{"admin", "points", demoVault, demoMachine}, args...)...)
	return ps, err
}

// samePoints checks the admin lists exactly the points the backups made.
func (d *demo) samePoints(ps []wire.Point) error {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	if !sameSet(ids, d.points) {
		return fmt.Errorf("`coffer admin points` lists %v, the backups made %v", ids, d.points)
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func short(id string) string { return id[:min(12, len(id))] }

func stepFirstBackup(ctx context.Context, d *demo) (string, error) {
	d.src = filepath.Join(d.Dir, "office-share")
	n, err := makeSample(d.src, sampleFiles)
	if err != nil {
		return "", fmt.Errorf("make the sample folder: %w", err)
	}
	d.files = n
	p, err := d.setPolicy(ctx, demoPolicy, d.src)
	if err != nil {
		return "", err
	}
	sum, err := d.backup(ctx)
	if err != nil {
		return "", err
	}
	if sum.Files != int64(n) {
		return "", fmt.Errorf("the backup has %d files, the sample folder %d", sum.Files, n)
	}
	ps, err := d.listedPoints(ctx)
	if err != nil {
		return "", err
	}
	if err := d.samePoints(ps); err != nil {
		return "", err
	}
	return fmt.Sprintf("Policy %s (daily %s %s, includes %s) is assigned to %s.\n"+
		"Backed up %d files (%s; %s stored, compressed and encrypted) as job %s: completed; `coffer admin points` lists point %s.",
		demoPolicy, p.Schedule.Times[0], p.Schedule.TimeZone, d.src, demoMachine,
		sum.Files, humanSize(sum.Bytes), humanSize(sum.Stored), sum.JobID, short(sum.ID)), nil
}

func stepSecondBackup(ctx context.Context, d *demo) (string, error) {
	what, err := changeSample(d.src)
	if err != nil {
		return "", fmt.Errorf("change the sample folder: %w", err)
	}
	d.files++ // two added, one deleted
	sum, err := d.backup(ctx)
	if err != nil {
		return "", err
	}
	if sum.Files != int64(d.files) {
		return "", fmt.Errorf("the backup has %d files, the sample folder %d", sum.Files, d.files)
	}
	ps, err := d.listedPoints(ctx)
	if err != nil {
		return "", err
	}
	if len(ps) != 2 {
		return "", fmt.Errorf("`coffer admin points` lists %d points, want 2", len(ps))
	}
	if err := d.samePoints(ps); err != nil {
		return "", err
	}
	slices.SortFunc(ps, func(a, b wire.Point) int { return a.Time.Compare(b.Time) })
	return fmt.Sprintf("Changed the share: %s.\n"+
		"Backup job %s completed, reading %s of %s; %s now has 2 recovery points: %s (%s) and %s (%s).",
		what, sum.JobID, humanSize(sum.BytesRead), humanSize(sum.Bytes), demoMachine,
		short(ps[0].ID), ps[0].Time.Local().Format(time.TimeOnly), short(ps[1].ID), ps[1].Time.Local().Format(time.TimeOnly)), nil
}

func stepRestore(ctx context.Context, d *demo) (string, error) {
	target := filepath.Join(d.Dir, "restored")
	var res struct {
		Point string `json:"point"`
		Files int    `json:"files"`
	}
	if err := d.cofferJSON(ctx, &res, "restore", "latest", "--target", target, "--config-dir", d.configDir); err != nil {
		return "", err
	}
	if res.Point != d.points[len(d.points)-1] {
		return "", fmt.Errorf("restored point %s, the latest is %s", res.Point, d.points[len(d.points)-1])
	}
	files, size, err := compareTrees(d.src, restoredPath(target, d.src))
	if err != nil {
		return "", err
	}
	if files != d.files || res.Files != files {
		return "", fmt.Errorf("compared %d files, restored %d, the share holds %d", files, res.Files, d.files)
	}
	return fmt.Sprintf("Restored the latest point (%s) into %s.\n"+
		"Compared all %d files (%s) and every folder with the share, byte for byte: identical.",
		short(res.Point), target, files, humanSize(size)), nil
}

func stepFailedBackup(ctx context.Context, d *demo) (string, error) {
	// A share that is gone, as when a disk is not mounted: the backup fails
	// and the agent reports it.
	gone := filepath.Join(d.Dir, "share-on-an-unmounted-disk")
	if exists(gone) {
		return "", fmt.Errorf("%s exists", gone)
	}
	if _, err := d.setPolicy(ctx, "unmounted-share", gone); err != nil {
		return "", err
	}
	if out, err := d.coffer(ctx, "backup", "--config-dir", d.configDir); err == nil {
		return "", fmt.Errorf("the backup of a missing folder did not fail: %s", out)
	}
	var js []wire.Job
	if err := d.cofferJSON(ctx, &js, "admin", "jobs", demoVault, "--status", wire.StatusFailed); err != nil {
		return "", err
	}
	if len(js) != 1 || js[0].MachineID != d.machineID || js[0].Type != wire.JobBackup {
		return "", fmt.Errorf("`coffer admin jobs --status failed` lists %d jobs, want the one backup of %s: %+v", len(js), demoMachine, js)
	}
	job := js[0]
	m, err := waitMail(ctx, d.Stack.SMTP, func(m smtpsink.Message) bool {
		return strings.Contains(m.Subject, "Backup failed on "+demoMachine) && slices.Contains(m.To, d.recipient)
	})
	if err != nil {
		return "", fmt.Errorf("no alert email for the failed backup: %w", err)
	}
	if !strings.Contains(m.Body, job.ID) {
		return "", fmt.Errorf("the alert email does not name job %s:\n%s", job.ID, m.Body)
	}
	return fmt.Sprintf("Backup job %s failed; `coffer admin jobs --status failed` shows it: %s: %s.\n"+
		"The alert email arrived for %s: %q.",
		job.ID, job.ErrorCode, strings.Join(strings.Fields(job.Message), " "), strings.Join(m.To, ", "), m.Subject), nil
}

// waitMail waits until the sink has captured a message that match accepts.
func waitMail(ctx context.Context, sink *smtpsink.Sink, match func(smtpsink.Message) bool) (smtpsink.Message, error) {
	for n := 1; ; {
		msgs, err := sink.Wait(ctx, n)
		if err != nil {
			return smtpsink.Message{}, fmt.Errorf("%w (the sink has %d messages)", err, len(sink.Messages()))
		}
		for _, m := range msgs {
			if match(m) {
				return m, nil
			}
		}
		n = len(msgs) + 1
	}
}

// pin asks the control plane for a security PIN.
func (d *demo) pin(ctx context.Context) (wire.PIN, error) {
	var p wire.PIN
	if err := d.cofferJSON(ctx, &p, "admin", "pin", demoVault); err != nil {
		return p, err
	}
	if p.PIN == "" {
		return p, errors.New("`coffer admin pin` gave no PIN")
	}
	return p, nil
}

// deleteData stops protecting the machine and soft-deletes its data with a
// new PIN, and checks the admin sees it deleted.
func (d *demo) deleteData(ctx context.Context) (wire.PIN, wire.Machine, error) {
	var m wire.Machine
	p, err := d.pin(ctx)
	if err != nil {
		return p, m, err
	}
	if err := d.cofferJSON(ctx, &m, "admin", "stop", demoVault, demoMachine, "--delete-data", "--pin", p.PIN); err != nil {
		return p, m, err
	}
	var ms []wire.Machine
	if err := d.cofferJSON(ctx, &ms, "admin", "machines", demoVault); err != nil {
		return p, m, err
	}
	i := slices.IndexFunc(ms, func(x wire.Machine) bool { return x.ID == d.machineID })
	if i < 0 || ms[i].State != wire.MachineDeleted || ms[i].PurgeAfter == nil {
		return p, m, fmt.Errorf("after deleting its data `coffer admin machines` lists %+v", ms)
	}
	return p, ms[i], nil
}

func stepDeleteUndelete(ctx context.Context, d *demo) (string, error) {
	p, m, err := d.deleteData(ctx)
	if err != nil {
		return "", err
	}
	var back wire.Machine
	if err := d.cofferJSON(ctx, &back, "admin", "undelete", demoVault, demoMachine); err != nil {
		return "", err
	}
	if back.State != wire.MachineStopped {
		return "", fmt.Errorf("after undelete %s is %s, want %s", demoMachine, back.State, wire.MachineStopped)
	}
	ps, err := d.listedPoints(ctx)
	if err != nil {
		return "", err
	}
	if err := d.samePoints(ps); err != nil {
		return "", err
	}
	return fmt.Sprintf("With PIN %s (works once, for 5 minutes) deleted %s's backup data: `coffer admin machines` lists it as %s, to be purged after %s.\n"+
		"Undeleted it: %s is %s (protection off, data kept) with its %d recovery points back.",
		p.PIN, demoMachine, m.State, m.PurgeAfter.Local().Format(time.DateTime), demoMachine, back.State, len(ps)), nil
}

// purgeInvocation is the timer invocation the Functions host posts to
// /PurgeSoftDeleted at 03:00 UTC.
func purgeInvocation(now time.Time) map[string]any {
	now = now.UTC()
	return map[string]any{
		"Data": map[string]any{"timer": map[string]any{
			"Schedule":       map[string]any{"AdjustForDST": true},
			"ScheduleStatus": map[string]any{"Last": now.Add(-24 * time.Hour), "Next": now, "LastUpdated": now.Add(-24 * time.Hour)},
			"IsPastDue":      false,
		}},
		"Metadata": map[string]any{"sys": map[string]any{"MethodName": "PurgeSoftDeleted", "UtcNow": now}},
	}
}

func stepPurge(ctx context.Context, d *demo) (string, error) {
	_, m, err := d.deleteData(ctx)
	if err != nil {
		return "", err
	}
	advance := map[string]string{"advance": "360h"}
	var clock struct {
		Now time.Time `json:"now"`
	}
	if err := d.post(ctx, d.cpURL+wire.Version+"/dev/clock", advance, &clock); err != nil {
		return "", fmt.Errorf("move the control plane's clock: %w", err)
	}
	if clock.Now.Before(*m.PurgeAfter) {
		return "", fmt.Errorf("the clock moved to %s, before the purge time %s", clock.Now, m.PurgeAfter)
	}
	// Standalone, the scheduler fires PurgeSoftDeleted at 03:00 UTC by the
	// real clock, and no HTTP route starts it. Under the Functions host the
	// host posts the timer invocation; the demo plays the host for a second
	// coffer-functions in host mode, whose clock it moves the same way.
	host, err := d.startControlPlane(ctx, "coffer-functions-host", false)
	if err != nil {
		return "", err
	}
	if err := d.post(ctx, host+wire.Version+"/dev/clock", advance, nil); err != nil {
		return "", fmt.Errorf("move the host-mode control plane's clock: %w", err)
	}
	var reply struct {
		Logs []string `json:"Logs"`
	}
	if err := d.post(ctx, host+"/PurgeSoftDeleted", purgeInvocation(time.Now()), &reply); err != nil {
		return "", fmt.Errorf("invoke PurgeSoftDeleted: %w", err)
	}
	if !strings.Contains(strings.Join(reply.Logs, " "), "PurgeSoftDeleted done") {
		return "", fmt.Errorf("PurgeSoftDeleted answered %v", reply.Logs)
	}
	// The machine, its points and its container are gone.
	var ms []wire.Machine
	if err := d.cofferJSON(ctx, &ms, "admin", "machines", demoVault); err != nil {
		return "", err
	}
	if slices.ContainsFunc(ms, func(x wire.Machine) bool { return x.ID == d.machineID }) {
		return "", fmt.Errorf("%s is still listed after the purge: %+v", demoMachine, ms)
	}
	// By its ID, as the name is free again: the points are gone too.
	var ps []wire.Point
	err = d.cofferJSON(ctx, &ps, "admin", "points", demoVault, d.machineID, "--deleted")
	if err == nil || !strings.Contains(err.Error(), "("+wire.CodeNotFound+")") {
		return "", fmt.Errorf("listing the points of %s after the purge gave %d points and error %v, want not_found", demoMachine, len(ps), err)
	}
	gone, err := containerGone(ctx, d.Stack.Azurite.ConnectionString(), d.container)
	if err != nil {
		return "", err
	}
	if !gone {
		return "", fmt.Errorf("container %s still exists after the purge", d.container)
	}
	return fmt.Sprintf("Deleted %s's data again with a new PIN and moved the control plane's clock 15 days ahead, to %s.\n"+
		"Acting as the Functions host (standalone, the purge timer fires at 03:00 UTC by the real clock), ran PurgeSoftDeleted on a host-mode coffer-functions whose clock was moved too: %s, its %d points and container %s are gone for good.",
		demoMachine, clock.Now.Local().Format(time.DateTime), demoMachine, len(d.points), d.container), nil
}

// containerGone says whether a blob container no longer exists.
func containerGone(ctx context.Context, connStr, name string) (bool, error) {
	c, err := azblob.NewClientFromConnectionString(connStr, nil)
	if err != nil {
		return false, err
	}
	_, err = c.ServiceClient().NewContainerClient(name).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return true, nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for container %s: %w", name, err)
	}
	return false, nil
}
