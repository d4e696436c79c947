package adversary

import (
	"net/http"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Attack 13 (issue 16): acknowledging an alarm "as a false positive"
// teaches the ransomware alarm to let such a change pass, so it is a
// Contributor's decision about a ransomware alert only. A machine's own key,
// an Operator and a Reader try it; a Contributor tries it on an alert that
// is not a ransomware alarm. Every try is refused and the alert stays open.
func TestOnlyAContributorCanClearARansomwareAlarm(t *testing.T) {
	ctx := t.Context()
	v := fx.vault
	m, err := fx.register(ctx, v, "fp-probe")
	if err != nil {
		t.Fatal(err)
	}
	m.src = fx.victim.src
	if err := fx.assignLongPolicy(ctx, m); err != nil {
		t.Fatal(err)
	}
	agent := m.agent(fx.cp)
	var j wire.Job
	if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j); err != nil {
		t.Fatalf("the machine creates a job: %v", err)
	}
	if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/jobs/"+j.ID, wire.JobReport{Status: wire.StatusFailed,
		ErrorCode: "io_error", Message: "disk on fire"}, nil); err != nil {
		t.Fatalf("the machine reports a failure: %v", err)
	}
	var alert wire.Alert
	waitFor(t, "the failure to raise an alert", time.Minute, func() bool {
		for _, a := range alerts(t, fx.reader, v.ID) {
			if a.MachineID == m.id && a.Kind == wire.AlertJobFailed {
				alert = a
				return true
			}
		}
		return false
	})
	ack := wire.Version + "/vaults/" + v.ID + "/alerts/" + alert.ID + "/acknowledge?falsePositive=true"

	tries := []struct {
		who  string
		do   func() error
		want int
	}{
		{"the machine's own key", func() error { _, err := agent.Do(ctx, "POST", ack, nil, nil); return err }, http.StatusUnauthorized},
		{"a Reader", func() error { _, err := fx.reader.Do(ctx, "POST", ack, nil, nil); return err }, http.StatusForbidden},
		{"an Operator", func() error { _, err := fx.operator.Do(ctx, "POST", ack, nil, nil); return err }, http.StatusForbidden},
		{"a Contributor, on a failure alert", func() error { _, err := fx.contributor.Do(ctx, "POST", ack, nil, nil); return err }, http.StatusBadRequest},
	}
	for _, try := range tries {
		err := try.do()
		if err == nil {
			t.Errorf("%s acknowledged a %s alert as a false positive", try.who, alert.Kind)
			continue
		}
		// The machine's key is no admin credential at all: 401 or 403 both refuse.
		if got := status(err); got != try.want && !(try.want == http.StatusUnauthorized && got == http.StatusForbidden) {
			t.Errorf("%s: answer %d (%v), want %d", try.who, got, err, try.want)
		}
	}
	for _, a := range alerts(t, fx.reader, v.ID) {
		if a.ID == alert.ID && a.Acknowledged {
			t.Errorf("the alert was acknowledged by a refused request: %+v", a)
		}
	}
}
