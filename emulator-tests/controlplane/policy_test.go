package controlplane

import (
	"net/http"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Every rule of policy validation is refused through the API with a 422,
// the rule's name and a message that says what to fix.
func TestEveryPolicyRuleIsRefusedWithItsMessage(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("policy-rules")
	ctx := ctxT(t)
	throttled := func(p *policy.Policy) {
		p.Throttle = policy.Throttle{Enabled: true, WorkDays: []string{"monday"}, WorkStart: "09:00", WorkEnd: "17:00", WorkKbps: 1024, NonWorkKbps: 8192}
	}
	cases := []struct {
		rule   string
		change func(p *policy.Policy)
	}{
		{"schedule.frequency", func(p *policy.Policy) { p.Schedule.Frequency = "hourly" }},
		{"schedule.days.required", func(p *policy.Policy) { p.Schedule.Frequency = "weekly" }},
		{"schedule.days.forbidden", func(p *policy.Policy) { p.Schedule.Days = []string{"monday"} }},
		{"schedule.times.count", func(p *policy.Policy) { p.Schedule.Times = []string{"01:00", "02:00", "03:00", "04:00"} }},
		{"schedule.times.count", func(p *policy.Policy) { p.Schedule.Times = nil }},
		{"schedule.times.granularity", func(p *policy.Policy) { p.Schedule.Times = []string{"21:15"} }},
		{"schedule.times.format", func(p *policy.Policy) { p.Schedule.Times = []string{"9pm"} }},
		{"schedule.times.unique", func(p *policy.Policy) { p.Schedule.Times = []string{"21:00", "21:00"} }},
		{"schedule.timezone", func(p *policy.Policy) { p.Schedule.TimeZone = "Mars/Olympus_Mons" }},
		{"retention.daily.min", func(p *policy.Policy) { p.Retention.DailyDays = 0 }},
		{"retention.daily.max", func(p *policy.Policy) { p.Retention.DailyDays = 10000 }},
		{"retention.weekly.max", func(p *policy.Policy) { p.Retention.WeeklyWeeks = 5164 }},
		{"retention.monthly.max", func(p *policy.Policy) { p.Retention.MonthlyMonths = 1189 }},
		{"retention.yearly.max", func(p *policy.Policy) { p.Retention.YearlyYears = 100 }},
		{"retention.max_points", func(p *policy.Policy) { p.Retention.DailyDays = 9999; p.Retention.WeeklyWeeks = 52 }},
		{"retention.security_minimum.daily", func(p *policy.Policy) { p.Retention.DailyDays = 6 }},
		{"retention.security_minimum.weekly", func(p *policy.Policy) { p.Retention.WeeklyWeeks = 3 }},
		{"retention.security_minimum.monthly", func(p *policy.Policy) { p.Retention.MonthlyMonths = 2 }},
		{"retention.weekly_day", func(p *policy.Policy) { p.Retention.WeeklyDay = "funday" }},
		{"retention.monthly_day", func(p *policy.Policy) { p.Retention.MonthlyDay = 31 }},
		{"retention.yearly_month", func(p *policy.Policy) { p.Retention.YearlyYears = 1; p.Retention.YearlyMonth = 13 }},
		{"include.required", func(p *policy.Policy) { p.Include = nil }},
		{"include.absolute", func(p *policy.Policy) { p.Include = []string{"relative/path"} }},
		{"include.empty", func(p *policy.Policy) { p.Include = []string{""} }},
		{"exclude.pattern", func(p *policy.Policy) { p.Exclude = []string{"[unclosed"} }},
		{"throttle.rate.range", func(p *policy.Policy) { throttled(p); p.Throttle.WorkKbps = 100 }},
		{"throttle.rate.range", func(p *policy.Policy) { throttled(p); p.Throttle.NonWorkKbps = 2 << 20 }},
		{"throttle.workdays.required", func(p *policy.Policy) { throttled(p); p.Throttle.WorkDays = nil }},
		{"throttle.hours", func(p *policy.Policy) { throttled(p); p.Throttle.WorkStart, p.Throttle.WorkEnd = "18:00", "08:00" }},
		{"throttle.hours.granularity", func(p *policy.Policy) { throttled(p); p.Throttle.WorkStart = "09:10" }},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			p := goodPolicy()
			tc.change(&p)
			_, err := c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/bad", p, nil)
			wantCode(t, err, http.StatusUnprocessableEntity, wire.CodeValidation)
			body := err.(*cpclient.StatusError).Body
			found := false
			for _, d := range body.Details {
				if d.Rule == tc.rule && d.Message != "" && d.Field != "" {
					found = true
				}
			}
			if !found {
				t.Fatalf("rule %s not among %+v", tc.rule, body.Details)
			}
		})
	}
	// The good policy itself passes, and without security features the
	// minimums do not apply.
	_, err := c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/good", goodPolicy(), nil)
	must(t, err)
	var pin wire.PIN
	_, err = c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pin)
	must(t, err)
	_, err = c.Contributor.Do(ctx, "PATCH", "/api/v1/vaults/"+v.ID, wire.VaultUpdate{SecurityFeatures: ptr(false)}, nil, cpclient.PIN(pin.PIN))
	must(t, err)
	p := goodPolicy()
	p.Retention.DailyDays = 1
	_, err = c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/short", p, nil)
	must(t, err)
}

// A client's mistakes get a 4xx with a code and a message; never a 5xx.
func TestBadInputGetsA4xxNeverA5xx(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("bad-input")
	a := c.mustRegister(c.credentials(v), "branch-01")
	ctx := ctxT(t)
	raw := func(method, path, body string) (int, wire.Error) {
		req, _ := http.NewRequestWithContext(ctx, method, c.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+contributorToken)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		var e wire.Error
		jsonDecode(resp.Body, &e)
		return resp.StatusCode, e
	}
	base := "/api/v1/vaults/" + v.ID
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/api/v1/vaults", ``, 400, wire.CodeBadRequest},
		{"POST", "/api/v1/vaults", `{"name":`, 400, wire.CodeBadRequest},
		{"POST", "/api/v1/vaults", `{"name":"x","colour":"red"}`, 400, wire.CodeBadRequest},
		{"POST", "/api/v1/vaults", `{"name":42}`, 400, wire.CodeBadRequest},
		{"POST", "/api/v1/vaults", `{"name":"x"}{"name":"y"}`, 400, wire.CodeBadRequest},
		{"POST", "/api/v1/vaults", `{"name":""}`, 400, wire.CodeValidation},
		{"POST", "/api/v1/vaults", `{"name":"BAD-INPUT"}`, 409, wire.CodeConflict},
		{"POST", "/api/v1/vaults", `{"name":"x","alertRecipients":["not an address"]}`, 400, wire.CodeValidation},
		{"POST", "/api/v1/vaults", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, wire.CodeTooLarge},
		{"GET", "/api/v1/vaults/NOT-AN-ID", ``, 404, wire.CodeNotFound},
		{"GET", "/api/v1/vaults/0000", ``, 404, wire.CodeNotFound},
		{"GET", base + "/jobs?since=yesterday", ``, 400, wire.CodeBadRequest},
		{"GET", base + "/jobs?limit=100000", ``, 400, wire.CodeBadRequest},
		{"GET", base + "/jobs?type=nap", ``, 400, wire.CodeBadRequest},
		{"PUT", base + "/policies/Bad_Name", `{}`, 400, wire.CodeValidation},
		{"PUT", base + "/policies/x", `{"schedule":{"frequency":"daily"},"bogus":1}`, 400, wire.CodeBadRequest},
		{"PUT", base + "/machines/" + a.MachineID + "/policy", `{"policy":"missing"}`, 404, wire.CodeNotFound},
		{"DELETE", base + "/machines/" + a.MachineID + "/points/zz", ``, 404, wire.CodeNotFound},
		{"GET", "/api/v1/nope", ``, 404, wire.CodeNotFound},
		{"POST", "/api/v1/register", `{"vaultId":"../../etc"}`, 401, wire.CodeUnauthenticated},
	} {
		status, e := raw(tc.method, tc.path, tc.body)
		if status != tc.status || e.Code != tc.code || e.Message == "" {
			t.Errorf("%s %s %.40q: %d %s %q, want %d %s", tc.method, tc.path, tc.body, status, e.Code, e.Message, tc.status, tc.code)
		}
	}
	// An agent's bad bodies too.
	for _, body := range []any{map[string]any{"type": "nap"}, map[string]any{"type": 7}, nil} {
		_, err := a.Do(ctx, "POST", "/api/v1/agent/jobs", body, nil)
		if se, ok := err.(*cpclient.StatusError); !ok || se.Status >= 500 || se.Status < 400 {
			t.Errorf("agent job %v: %v", body, err)
		}
	}
	_, err := a.Do(ctx, "POST", "/api/v1/agent/points", wire.NewPoint{ID: "short"}, nil)
	if se, ok := err.(*cpclient.StatusError); !ok || se.Status != 400 {
		t.Errorf("bad point ID: %v", err)
	}
	var j wire.Job
	_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j)
	must(t, err)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs/"+j.ID, wire.JobReport{Status: "exploded"}, nil)
	if se, ok := err.(*cpclient.StatusError); !ok || se.Status != 400 {
		t.Errorf("bad status: %v", err)
	}
}
