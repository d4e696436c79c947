package controlplane

import (
	"context"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/functions/mailer"
	"github.com/coffer-backup/coffer/functions/pin"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// The attack of issue 10, row 1: a machine on a 180-day policy with 40
// points is moved to a new 7-day policy. Without a PIN the move is refused
// and retention deletes nothing; with one it goes through and a critical
// alert names the reduction.
func TestCuttingRetentionByAssigningAnotherPolicyNeedsAPIN(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("retention-guard")
	a := c.mustRegister(c.credentials(v), "branch-11")
	ctx := ctxT(t)
	put := func(name string, days int) {
		p := goodPolicy()
		p.Retention = policy.Retention{DailyDays: days}
		_, err := c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/"+name, p, nil)
		must(t, err)
	}
	put("long", 180)
	assign := func(name string, h ...http.Header) error {
		_, err := c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/policy", wire.AssignPolicy{Policy: name}, nil, h...)
		return err
	}
	must(t, assign("long")) // the first policy of a machine with no points needs no PIN
	cc := a.sas(t)
	for range 40 {
		a.backup(t, cc, randomID())
		c.Clock.Advance(24 * time.Hour)
	}
	put("short", 7) // a new policy shortens nothing until it is assigned

	points := func() int {
		var ps []wire.Point
		_, err := c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/points", nil, &ps)
		must(t, err)
		return len(ps)
	}
	wantCode(t, assign("short"), http.StatusForbidden, wire.CodePINRequired)
	p := goodPolicy()
	p.Retention = policy.Retention{DailyDays: 7}
	_, err := c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/long", p, nil)
	wantCode(t, err, http.StatusForbidden, wire.CodePINRequired)
	_, err = c.App.Timers.EnforceRetention(ctx)
	must(t, err)
	if n := points(); n != 40 {
		t.Fatalf("%d points left after refused changes, want all 40", n)
	}

	var pn wire.PIN
	_, err = c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pn)
	must(t, err)
	must(t, assign("short", http.Header{wire.PINHeader: {pn.PIN}}))
	var as []wire.Alert
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertCriticalOperation, nil, &as)
	must(t, err)
	if len(as) != 1 || !strings.Contains(as[0].Detail, "daily: 180 days → 7 days") || !strings.Contains(as[0].Detail, "branch-11") {
		t.Fatalf("alerts after the PIN-approved move: %+v", as)
	}
	_, err = c.App.Timers.EnforceRetention(ctx)
	must(t, err)
	if n := points(); n != 6 {
		t.Fatalf("%d points left after the approved move, want the last week's 6", n)
	}

	// A policy the machine follows cannot be deleted; the one it left can.
	_, err = c.Contributor.Do(ctx, "DELETE", "/api/v1/vaults/"+v.ID+"/policies/short", nil, nil)
	wantCode(t, err, http.StatusConflict, wire.CodeConflict)
	_, err = c.Contributor.Do(ctx, "DELETE", "/api/v1/vaults/"+v.ID+"/policies/long", nil, nil)
	must(t, err)
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/policies/long", nil, nil)
	wantCode(t, err, http.StatusNotFound, wire.CodeNotFound)
}

// Row 5: a machine guesses PINs for its vault. After five wrong ones the
// vault refuses PINs, even the right one from an admin, for 15 minutes,
// and one critical alert names the machine.
func TestGuessingPINsLocksTheVault(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("pin-guess")
	a := c.mustRegister(c.credentials(v), "branch-12")
	ctx := ctxT(t)
	var pn wire.PIN
	_, err := c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pn)
	must(t, err)
	guess := func(i int) error {
		g := fmt.Sprintf("%08d", i)
		if g == pn.PIN {
			g = fmt.Sprintf("%08d", i+1)
		}
		_, err := a.Do(ctx, "POST", "/api/v1/agent/passphrase-change", nil, nil, cpclient.PIN(g))
		return err
	}
	for i := range pin.MaxFailures - 1 {
		wantCode(t, guess(i), http.StatusForbidden, wire.CodePINInvalid)
	}
	wantCode(t, guess(99), http.StatusTooManyRequests, wire.CodePINLocked)
	for range 20 {
		wantCode(t, guess(7), http.StatusTooManyRequests, wire.CodePINLocked)
	}
	hdr, err := c.Contributor.Do(ctx, "PATCH", "/api/v1/vaults/"+v.ID, wire.VaultUpdate{SecurityFeatures: to.Ptr(false)}, nil, cpclient.PIN(pn.PIN))
	wantCode(t, err, http.StatusTooManyRequests, wire.CodePINLocked)
	if hdr.Get("Retry-After") == "" {
		t.Fatal("a locked vault's answer has no Retry-After")
	}
	var as []wire.Alert
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertCriticalOperation, nil, &as)
	must(t, err)
	if len(as) != 1 || !strings.Contains(as[0].Detail, "machine branch-12 ("+a.MachineID+")") || as[0].MachineID != a.MachineID {
		t.Fatalf("lockout alerts: %+v", as)
	}

	c.Clock.Advance(pin.Lockout)
	_, err = c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pn)
	must(t, err)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/passphrase-change", nil, nil, cpclient.PIN(pn.PIN))
	must(t, err)
}

// Row 6: a machine reports 30 failed jobs whose message is phishing text.
// The recipients get three alert emails and then one digest for the rest;
// in none of them is the machine's text a link, and it is always marked
// as the machine's.
func TestAFloodOfPhishingJobReportsIsOneDigestWithoutLinks(t *testing.T) {
	sink, err := smtpsink.Start(smtpsink.Options{})
	must(t, err)
	defer sink.Close()
	c := newCP(t, cpOptions{SMTP: sink, Queue: "queue.1"})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.App.RunTriggers(runCtx) }()
	defer func() { stop(); <-done }()

	v := c.vault("phishing")
	a := c.mustRegister(c.credentials(v), "branch-13")
	ctx := ctxT(t)
	const phish = "Your Coffer subscription expired. Restore access at https://coffer-billing.example/login?v=1 within 24 hours."
	for range 30 {
		var j wire.Job
		_, err := a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j)
		must(t, err)
		_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs/"+j.ID, wire.JobReport{Status: wire.StatusFailed, ErrorCode: "billing", Message: phish}, nil)
		must(t, err)
	}
	if _, err := sink.Wait(ctx, mailer.BurstLimit); err != nil {
		t.Fatalf("the first alerts were not emailed: %v", err)
	}
	// Wait until the receiver has filed the other 27 for the digest.
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString(), nil)
	must(t, err)
	digests := svc.NewClient("digests")
	deadline := time.Now().Add(90 * time.Second)
	for {
		n := 0
		pager := digests.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: to.Ptr("PartitionKey eq '" + v.ID + "'"), Select: to.Ptr("RowKey")})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			must(t, err)
			n += len(page.Entities)
		}
		if n == 30-mailer.BurstLimit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d alerts filed for the digest, want %d; %d emails sent", n, 30-mailer.BurstLimit, len(sink.Messages()))
		}
		time.Sleep(200 * time.Millisecond) // waiting for Service Bus delivery, not for time to pass
	}
	_, err = c.App.Mailer.SendDigests(ctx)
	must(t, err)
	// Other tests' vaults may have digests pending in the shared table too.
	var msgs []smtpsink.Message
	for _, m := range sink.Messages() {
		if m.Header.Get("X-Coffer-Vault") == v.ID {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) != mailer.BurstLimit+1 || !strings.Contains(msgs[len(msgs)-1].Subject, "Digest") {
		t.Fatalf("%d emails for the vault, want %d alerts and then one digest", len(msgs), mailer.BurstLimit+1)
	}
	var body string
	for i, m := range msgs {
		b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.Body)))
		must(t, err)
		body = string(b)
		if strings.Contains(body, "https://") || strings.Contains(body, "coffer-billing.example") || !strings.Contains(body, "Reported by the machine") {
			t.Fatalf("email %d (%s) carries the machine's link or does not mark its text:\n%s", i, m.Subject, body)
		}
	}
	if !strings.Contains(body, "more alerts from machine branch-13") {
		t.Fatalf("the digest does not summarise the burst:\n%s", body)
	}
}

// Clearing a point's retainUntil would let retention take it, so it needs
// a PIN; extending it does not. A change made meanwhile is not overwritten.
func TestClearingRetainUntilNeedsAPIN(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("retain-guard")
	a := c.mustRegister(c.credentials(v), "branch-14")
	ctx := ctxT(t)
	cc := a.sas(t)
	id := randomID()
	upload(t, cc, id, randomID())
	until := c.Clock.Now().Add(30 * 24 * time.Hour)
	_, err := a.Do(ctx, "POST", "/api/v1/agent/points", wire.NewPoint{ID: id, RetainUntil: &until}, nil)
	must(t, err)
	path := "/api/v1/vaults/" + v.ID + "/machines/" + a.MachineID + "/points/" + id
	later := until.Add(24 * time.Hour)
	var p wire.Point
	_, err = c.Contributor.Do(ctx, "PATCH", path, wire.PointUpdate{RetainUntil: &later}, &p)
	must(t, err)
	if p.RetainUntil == nil || !p.RetainUntil.Equal(later) {
		t.Fatalf("extended point: %+v", p)
	}
	_, err = c.Contributor.Do(ctx, "PATCH", path, wire.PointUpdate{}, nil)
	wantCode(t, err, http.StatusForbidden, wire.CodePINRequired)
	var pn wire.PIN
	_, err = c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pn)
	must(t, err)
	var cleared wire.Point
	_, err = c.Contributor.Do(ctx, "PATCH", path, wire.PointUpdate{}, &cleared, cpclient.PIN(pn.PIN))
	must(t, err)
	if cleared.ID != id || cleared.RetainUntil != nil {
		t.Fatalf("cleared point: %+v", cleared)
	}
	var as []wire.Alert
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertCriticalOperation, nil, &as)
	must(t, err)
	if len(as) != 1 || !strings.Contains(as[0].Detail, "retain until") {
		t.Fatalf("alerts: %+v", as)
	}
}
