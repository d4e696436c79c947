package controlplane

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// A failed backup raises a critical alert: stored, listed, published on
// Service Bus and emailed to the vault's recipients. The mail relay refuses
// the first attempt; the message is retried and the email still arrives.
func TestFailedBackupAlertBecomesEmailEvenWhenTheFirstSendFails(t *testing.T) {
	sink, err := smtpsink.Start(smtpsink.Options{RejectFirst: 1})
	must(t, err)
	defer sink.Close()
	c := newCP(t, cpOptions{SMTP: sink, Queue: "queue.1"})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.App.RunTriggers(runCtx) }()
	defer func() { stop(); <-done }()

	v := c.vault("alerts")
	a := c.mustRegister(c.credentials(v), "branch-07")
	ctx := ctxT(t)
	var j wire.Job
	_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j)
	must(t, err)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs/"+j.ID, wire.JobReport{Status: wire.StatusFailed, ErrorCode: "storage_unreachable",
		Message: "could not reach blob storage for 30 minutes"}, nil)
	must(t, err)

	var as []wire.Alert
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?acknowledged=false", nil, &as)
	must(t, err)
	if len(as) != 1 || as[0].Severity != wire.SeverityCritical || as[0].Kind != wire.AlertJobFailed || as[0].JobID != j.ID {
		t.Fatalf("alerts: %+v", as)
	}

	wait, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	msgs, err := sink.Wait(wait, 1)
	if err != nil {
		t.Fatalf("no email arrived: %v", err)
	}
	m := msgs[0]
	if !strings.Contains(m.Subject, "branch-07") || !strings.Contains(strings.ToUpper(m.Subject), "CRITICAL") ||
		len(m.To) != 1 || m.To[0] != "ops@branch.example" || !strings.Contains(m.Body, "storage_unreachable") {
		t.Fatalf("email: subject %q to %v body %q", m.Subject, m.To, m.Body)
	}

	// An operator acknowledges it.
	var acked wire.Alert
	_, err = c.Operator.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/alerts/"+as[0].ID+"/acknowledge", nil, &acked)
	must(t, err)
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?acknowledged=false", nil, &as)
	must(t, err)
	if !acked.Acknowledged || len(as) != 0 {
		t.Fatalf("after acknowledging: %+v, open %d", acked, len(as))
	}
}

// A vault on the hourly digest gets one email with all its alerts.
func TestDigestVaultGetsOneHourlyEmail(t *testing.T) {
	sink, err := smtpsink.Start(smtpsink.Options{})
	must(t, err)
	defer sink.Close()
	c := newCP(t, cpOptions{SMTP: sink, Queue: "queue.1"})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.App.RunTriggers(runCtx) }()
	defer func() { stop(); <-done }()

	ctx := ctxT(t)
	var v wire.Vault
	_, err = c.Contributor.Do(ctx, "POST", "/api/v1/vaults", wire.NewVault{Name: "digest", AlertRecipients: []string{"it@branch.example"}, AlertDigest: true}, &v)
	must(t, err)
	a := c.mustRegister(c.credentials(v), "branch-08")
	for i := range 3 {
		var j wire.Job
		_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j)
		must(t, err)
		r := wire.JobReport{Status: wire.StatusCompletedWithWarnings, Skipped: []wire.Skipped{{Path: "/srv/locked.db", Reason: "in use"}}}
		if i == 2 {
			r = wire.JobReport{Status: wire.StatusFailed, ErrorCode: "disk", Message: "read error"}
		}
		_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs/"+j.ID, r, nil)
		must(t, err)
	}
	// The receiver files them for the digest; no email yet.
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := c.App.Mailer.SendDigests(ctx)
		must(t, err)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the alerts never reached the digest")
		}
		time.Sleep(200 * time.Millisecond) // waiting for Service Bus delivery, not for time to pass
	}
	msgs, err := sink.Wait(ctx, 1)
	must(t, err)
	if len(sink.Messages()) != 1 || !strings.Contains(msgs[0].Body, "branch-08") || msgs[0].To[0] != "it@branch.example" {
		t.Fatalf("digest: %d emails, first %q", len(sink.Messages()), msgs[0].Subject)
	}
}

// The monitor raises one alert for a missed scheduled backup, and fails a
// job whose agent went silent.
func TestMonitorCatchesMissedBackupsAndSilentJobs(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("monitor")
	a := c.mustRegister(c.credentials(v), "branch-09")
	ctx := ctxT(t)
	pol := goodPolicy()
	pol.Schedule = policy.Schedule{Frequency: policy.FrequencyDaily, Times: []string{"21:00"}, TimeZone: "Asia/Tokyo"}
	_, err := c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/nightly", pol, nil)
	must(t, err)
	_, err = c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/policy", wire.AssignPolicy{Policy: "nightly"}, nil)
	must(t, err)
	alertsOf := func(kind string) []wire.Alert {
		var as []wire.Alert
		_, err := c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+kind, nil, &as)
		must(t, err)
		return as
	}

	// Just after the next 21:00 in Tokyo plus the grace hour.
	due, err := pol.Schedule.Next(c.Clock.Now())
	must(t, err)
	c.Clock.Advance(due.Add(time.Hour + time.Minute).Sub(c.Clock.Now()))
	_, err = c.App.Timers.MonitorBackups(ctx)
	must(t, err)
	_, err = c.App.Timers.MonitorBackups(ctx)
	must(t, err)
	missed := alertsOf(wire.AlertMissedBackup)
	if len(missed) != 1 || missed[0].MachineID != a.MachineID || !strings.Contains(missed[0].Detail, "21:00") {
		t.Fatalf("missed-backup alerts: %+v", missed)
	}

	// The next night the backup starts on time, then the agent goes silent.
	due, _ = pol.Schedule.Next(c.Clock.Now())
	c.Clock.Advance(due.Sub(c.Clock.Now()))
	var j wire.Job
	_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j)
	must(t, err)
	c.Clock.Advance(time.Hour + time.Minute)
	_, err = c.App.Timers.MonitorBackups(ctx)
	must(t, err)
	if n := len(alertsOf(wire.AlertMissedBackup)); n != 1 {
		t.Fatalf("a backup that started was reported missed (%d alerts)", n)
	}
	c.Clock.Advance(time.Hour)
	_, err = c.App.Timers.MonitorBackups(ctx)
	must(t, err)
	var got wire.Job
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/jobs/"+j.ID, nil, &got)
	must(t, err)
	if got.Status != wire.StatusFailed || got.ErrorCode != "agent_silent" {
		t.Fatalf("silent job: %+v", got)
	}
	if f := alertsOf(wire.AlertJobFailed); len(f) != 1 || f[0].JobID != j.ID {
		t.Fatalf("job-failed alerts: %+v", f)
	}
}
