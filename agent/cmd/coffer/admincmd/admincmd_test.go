package admincmd

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/wire"
)

// The fake control plane: a few routes with fixed data. The real one is
// tested in functions/api and emulator-tests; this checks what the CLI
// sends and how it shows the answers.
const (
	admToken  = "admin-token-for-tests-0123"
	admPIN    = "12345678"
	admProdID = "0123456789abcdef0123"
	admWebID  = "aaaaaaaaaaaaaaaaaaaa"
	admDBID   = "bbbbbbbbbbbbbbbbbbbb"
	admPointA = "c0ffee00000000000000000000000000000000000000000000000000000000aa"
	admPointB = "c0ffee11000000000000000000000000000000000000000000000000000000bb"
	admKeyA   = "ab12000000000000000000000000000000000000000000000000000000000001"
	admKeyB   = "ab34000000000000000000000000000000000000000000000000000000000002"
)

var (
	admT0      = time.Date(2026, 3, 1, 21, 0, 0, 0, time.UTC)
	admT1      = admT0.Add(time.Hour)
	admPurgeAt = admT0.Add(14 * 24 * time.Hour)
)

type sentReq struct {
	method, path, query, pin, body string
}

type fakeCP struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []sentReq
	// fail answers "METHOD /path" with an error instead of the route.
	fail map[string]func(w http.ResponseWriter)
}

func newFakeCP(t *testing.T) *fakeCP {
	f := &fakeCP{t: t, fail: map[string]func(http.ResponseWriter){}}
	mux := http.NewServeMux()
	v := "/api/v1/vaults"
	vaults := []wire.Vault{
		{ID: admProdID, Name: "prod", AlertRecipients: []string{"ops@example.com"}, SecurityFeatures: true, CreatedAt: admT0},
		{ID: "1111111111111111aaaa", Name: "twin", CreatedAt: admT0},
		{ID: "2222222222222222bbbb", Name: "Twin", AlertDigest: true, CreatedAt: admT1},
	}
	mux.HandleFunc("GET "+v, f.answer(vaults))
	mux.HandleFunc("POST "+v, func(w http.ResponseWriter, r *http.Request) {
		var nv wire.NewVault
		json.NewDecoder(r.Body).Decode(&nv)
		f.json(w, http.StatusCreated, wire.Vault{ID: "3333333333333333cccc", Name: nv.Name, AlertRecipients: nv.AlertRecipients,
			AlertDigest: nv.AlertDigest, SecurityFeatures: nv.SecurityFeatures == nil || *nv.SecurityFeatures, CreatedAt: admT1})
	})
	mux.HandleFunc("GET "+v+"/"+admProdID, f.answer(vaults[0]))
	mux.HandleFunc("PATCH "+v+"/"+admProdID, func(w http.ResponseWriter, r *http.Request) {
		var u wire.VaultUpdate
		json.NewDecoder(r.Body).Decode(&u)
		if u.SecurityFeatures != nil && !*u.SecurityFeatures && !f.pinOK(w, r) {
			return
		}
		f.json(w, http.StatusOK, vaults[0])
	})
	mux.HandleFunc("POST "+v+"/"+admProdID+"/credentials", f.answer(wire.Credentials{Version: 1, ControlPlaneURL: "https://cp.example",
		VaultID: admProdID, VaultName: "prod", CredentialID: "cred", Secret: "s3cret", ExpiresAt: admT0.Add(48 * time.Hour)}))
	mux.HandleFunc("POST "+v+"/"+admProdID+"/pin", f.answer(wire.PIN{PIN: admPIN, ExpiresAt: admT0.Add(5 * time.Minute)}))
	daily := wire.PolicyDoc{Name: "daily", UpdatedAt: admT0, ETag: `"7"`, Policy: wire.RawJSON(`{"schedule":{"frequency":"daily",` +
		`"times":["21:00"],"timeZone":"UTC"},"retention":{"dailyDays":30,"weeklyWeeks":12,"monthlyMonths":12},"include":["/srv"],"throttle":{"enabled":false}}`)}
	mux.HandleFunc("GET "+v+"/"+admProdID+"/policies", f.answer([]wire.PolicyDoc{daily}))
	mux.HandleFunc("GET "+v+"/"+admProdID+"/policies/daily", f.answer(daily))
	mux.HandleFunc("DELETE "+v+"/"+admProdID+"/policies/{p}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("p") == "daily" {
			f.json(w, http.StatusConflict, wire.Error{Code: wire.CodeConflict, Message: "1 machine(s) follow policy daily (web-01); assign them another policy first"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT "+v+"/"+admProdID+"/policies/{p}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.json(w, http.StatusOK, wire.PolicyDoc{Name: r.PathValue("p"), Policy: b, UpdatedAt: admT1, ETag: `"1"`})
	})

	web := wire.Machine{ID: admWebID, VaultID: admProdID, Name: "web-01", State: wire.MachineProtected, Policy: "daily", RegisteredAt: admT0,
		Item: &wire.Item{LastBackupStatus: wire.StatusCompleted, LastBackupAt: &admT0, LatestPoint: &admT1, Points: 42, StorageBytes: 3 << 29}}
	db := wire.Machine{ID: admDBID, VaultID: admProdID, Name: "DB-01", State: wire.MachineStopped, RegisteredAt: admT0, Item: &wire.Item{}}
	// futureField stands for a field a newer control plane adds: --json
	// must pass it through.
	mux.HandleFunc("GET "+v+"/"+admProdID+"/machines", func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal([]wire.Machine{web, db})
		b = bytes.Replace(b, []byte(`{"id"`), []byte(`{"futureField":1,"id"`), 1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("GET "+v+"/1111111111111111aaaa/machines", f.answer([]wire.Machine{
		{ID: "cccccccccccccccccccc", Name: "Node"}, {ID: "dddddddddddddddddddd", Name: "node"}}))
	mux.HandleFunc("GET "+v+"/"+admProdID+"/machines/{m}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("m") {
		case admWebID:
			f.json(w, http.StatusOK, web)
		case admDBID:
			f.json(w, http.StatusOK, db)
		default:
			f.json(w, http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: "no machine " + r.PathValue("m")})
		}
	})
	mux.HandleFunc("PUT "+v+"/"+admProdID+"/machines/{m}/policy", func(w http.ResponseWriter, r *http.Request) {
		var ap wire.AssignPolicy
		json.NewDecoder(r.Body).Decode(&ap)
		m := web
		m.Policy = ap.Policy
		f.json(w, http.StatusOK, m)
	})
	mux.HandleFunc("POST "+v+"/"+admProdID+"/machines/{m}/stop", func(w http.ResponseWriter, r *http.Request) {
		var sp wire.StopProtection
		json.NewDecoder(r.Body).Decode(&sp)
		m := web
		m.State = wire.MachineStopped
		if sp.DeleteData {
			if !f.pinOK(w, r) {
				return
			}
			m.State, m.PurgeAfter = wire.MachineDeleted, &admPurgeAt
		}
		f.json(w, http.StatusOK, m)
	})
	mux.HandleFunc("POST "+v+"/"+admProdID+"/machines/{m}/resume", f.answer(web))
	points := []wire.Point{
		{ID: admPointA, MachineID: admWebID, Time: admT0, State: wire.PointActive},
		{ID: admPointB, MachineID: admWebID, Time: admT1, State: wire.PointDeleted, DeletedAt: &admT1, PurgeAfter: &admPurgeAt},
	}
	mux.HandleFunc("GET "+v+"/"+admProdID+"/machines/"+admWebID+"/points", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("deleted") == "include" {
			f.json(w, http.StatusOK, points)
			return
		}
		f.json(w, http.StatusOK, points[:1])
	})
	mux.HandleFunc("DELETE "+v+"/"+admProdID+"/machines/"+admWebID+"/points/{p}", func(w http.ResponseWriter, r *http.Request) {
		if f.pinOK(w, r) {
			f.json(w, http.StatusOK, points[1])
		}
	})
	keys := []wire.DeletedKey{
		{KeyID: admKeyA, ReplacedBy: admKeyB, Reason: "passphrase change", DeletedAt: admT0, PurgeAfter: admPurgeAt, Size: 412},
		{KeyID: admKeyB, Reason: "passphrase change", DeletedAt: admT1, PurgeAfter: admPurgeAt, Size: 412},
	}
	mux.HandleFunc("GET "+v+"/"+admProdID+"/machines/"+admWebID+"/deleted-keys", f.answer(keys))
	mux.HandleFunc("POST "+v+"/"+admProdID+"/machines/"+admWebID+"/deleted-keys/{k}/undelete", func(w http.ResponseWriter, r *http.Request) {
		for _, k := range keys {
			if k.KeyID == r.PathValue("k") {
				f.json(w, http.StatusOK, k)
				return
			}
		}
		f.json(w, http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: "no retired key file " + r.PathValue("k")})
	})
	mux.HandleFunc("GET "+v+"/"+admProdID+"/jobs", f.answer([]wire.Job{{ID: "job1", VaultID: admProdID, MachineID: admWebID, MachineName: "web-01",
		Type: wire.JobBackup, Status: wire.StatusFailed, StartedAt: admT0, UpdatedAt: admT1, EndedAt: &admT1, ErrorCode: "disk_full",
		Message: "the disk\nis full", Progress: wire.Progress{FilesDone: 7, BytesDone: 2048}}}))
	mux.HandleFunc("GET "+v+"/"+admProdID+"/alerts", f.answer([]wire.Alert{{ID: "al1", VaultID: admProdID, MachineName: "web-01",
		Severity: wire.SeverityCritical, Kind: wire.AlertJobFailed, Title: "Backup of web-01 failed", RaisedAt: admT1}}))

	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.reqs = append(f.reqs, sentReq{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get(wire.PINHeader), string(body)})
		fail := f.fail[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+admToken {
			f.json(w, http.StatusUnauthorized, wire.Error{Code: wire.CodeUnauthenticated, Message: "the bearer token matches no role"})
			return
		}
		if fail != nil {
			fail(w)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	t.Setenv(envURL, f.srv.URL)
	t.Setenv(envToken, admToken)
	return f
}

func (f *fakeCP) json(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeCP) answer(v any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { f.json(w, http.StatusOK, v) }
}

// pinOK checks the PIN header as the control plane does, answering when
// it is missing or wrong.
func (f *fakeCP) pinOK(w http.ResponseWriter, r *http.Request) bool {
	switch r.Header.Get(wire.PINHeader) {
	case admPIN:
		return true
	case "":
		f.json(w, http.StatusForbidden, wire.Error{Code: wire.CodePINRequired, Message: "to do this, generate a security PIN"})
	default:
		f.json(w, http.StatusForbidden, wire.Error{Code: wire.CodePINInvalid, Message: "the PIN is wrong, expired or used"})
	}
	return false
}

func (f *fakeCP) requests() []sentReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentReq(nil), f.reqs...)
}

func (f *fakeCP) last() sentReq {
	rs := f.requests()
	if len(rs) == 0 {
		f.t.Fatal("no request reached the control plane")
	}
	return rs[len(rs)-1]
}

// runAdmin runs `coffer admin args...` in process and returns its standard
// output and the error main would print as "coffer: <err>".
func runAdmin(args ...string) (string, error) {
	// The root as coffer's main builds it, with only the admin commands.
	root := &cobra.Command{Use: "coffer", SilenceUsage: true, SilenceErrors: true}
	root.SetFlagErrorFunc(cli.FlagError)
	root.AddCommand(New())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"admin"}, args...))
	err := root.Execute()
	return out.String(), err
}

func admLocal(t time.Time) string { return t.Local().Format(tableTime) }

func TestAdminNeedsURLAndToken(t *testing.T) {
	cp := newFakeCP(t)
	for _, tc := range []struct {
		name, url, token string
		args             []string
		code             int
		want             string
	}{
		{"no URL", "", admToken, nil, cli.ExitUsage, envURL},
		{"no token", cp.srv.URL, "", nil, cli.ExitUsage, envToken},
		{"not a URL", "cp.example.com", admToken, nil, cli.ExitUsage, "not an http(s) URL"},
		{"flags instead of env", "", "", []string{"--url", cp.srv.URL + "/api/v1/", "--token", admToken}, cli.ExitOK, ""},
		{"wrong token", cp.srv.URL, "nope", nil, cli.ExitFailed, "matches no role (unauthenticated); check --token or " + envToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envURL, tc.url)
			t.Setenv(envToken, tc.token)
			_, err := runAdmin(append([]string{"vault", "list"}, tc.args...)...)
			if cli.ExitCode(err) != tc.code || (tc.want != "" && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v (exit %d), want exit %d mentioning %q", err, cli.ExitCode(err), tc.code, tc.want)
			}
		})
	}
}

// TestAdminTables checks each table's header, a row's values, and that the
// columns line up.
func TestAdminTables(t *testing.T) {
	newFakeCP(t)
	for _, tc := range []struct {
		args []string
		row  []string // the header's first two columns, then cells of one row in order
	}{
		{[]string{"vault", "list"}, []string{"NAME", "ID", "prod", admProdID, "on", "per alert", "ops@example.com", admLocal(admT0)}},
		{[]string{"machines", "prod"}, []string{"NAME", "STATE", "web-01", "protected", "daily", "completed", admLocal(admT0), admLocal(admT1), "42", "1.5 GiB", admWebID}},
		{[]string{"points", "prod", "web-01", "--deleted"}, []string{"TIME", "ID", admLocal(admT1), admPointB[:12], "deleted", admLocal(admPurgeAt)}},
		{[]string{"jobs", "prod"}, []string{"STARTED", "MACHINE", admLocal(admT0), "web-01", "backup", "failed", "1h0m0s", "7", "2.0 KiB", "job1", "disk_full: the disk is full"}},
		{[]string{"alerts", "prod"}, []string{"RAISED", "SEVERITY", admLocal(admT1), "critical", "job_failed", "web-01", "no", "al1", "Backup of web-01 failed"}},
		{[]string{"policy", "list", "prod"}, []string{"NAME", "SCHEDULE", "daily", "daily 21:00 UTC", "30d 12w 12m", "1", admLocal(admT0)}},
		{[]string{"policy", "show", "prod", "daily"}, []string{"Name:", "daily", "Retention:", "every point 30 days\n"}},
		{[]string{"machine", "prod", "DB-01"}, []string{"Name:", "DB-01", "State:", "stopped (data retained"}},
		{[]string{"keys", "prod", "web-01"}, []string{"RETIRED", "KEY", admLocal(admT0), admKeyA[:12], admKeyB[:12], admLocal(admPurgeAt), "passphrase change"}},
		{[]string{"pin", "prod"}, []string{"PIN:", admPIN, "Valid until:", admT0.Add(5 * time.Minute).Local().Format(detailTime)}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := runAdmin(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(out, "\n")
			header := lines[0]
			if !strings.HasPrefix(header, tc.row[0]) || !strings.Contains(header, tc.row[1]) {
				t.Fatalf("header %q, want %q and %q:\n%s", header, tc.row[0], tc.row[1], out)
			}
			if strings.HasSuffix(tc.row[0], ":") { // a detail view: label and value on one line
				for i := 0; i < len(tc.row); i += 2 {
					if !strings.Contains(out, tc.row[i]) || !strings.Contains(out, tc.row[i+1]) {
						t.Fatalf("want %q %q in:\n%s", tc.row[i], tc.row[i+1], out)
					}
				}
				return
			}
			var row string
			for _, l := range lines[1:] {
				if strings.HasPrefix(l, tc.row[2]) && strings.Contains(l, tc.row[3]) {
					row = l
				}
			}
			at := 0
			for _, cell := range tc.row[2:] {
				i := strings.Index(row[at:], cell)
				if i < 0 {
					t.Fatalf("want %q after column %d of row %q:\n%s", cell, at, row, out)
				}
				at += i + len(cell)
			}
			if strings.Index(header, tc.row[1]) != strings.Index(row, tc.row[3]) {
				t.Fatalf("second column not aligned:\n%s", out)
			}
		})
	}
}

func TestAdminJSONPrintsTheAPIAnswer(t *testing.T) {
	cp := newFakeCP(t)
	for _, tc := range []struct {
		args []string
		path string
	}{
		{[]string{"vault", "list", "--json"}, "/api/v1/vaults"},
		{[]string{"--json", "machines", "prod"}, "/api/v1/vaults/" + admProdID + "/machines"},
		{[]string{"machine", admProdID, admWebID, "--json"}, "/api/v1/vaults/" + admProdID + "/machines/" + admWebID},
		{[]string{"jobs", "prod", "--json"}, "/api/v1/vaults/" + admProdID + "/jobs"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := runAdmin(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, cp.srv.URL+tc.path, nil)
			req.Header.Set("Authorization", "Bearer "+admToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var got, exp bytes.Buffer
			if err := json.Compact(&got, []byte(out)); err != nil {
				t.Fatalf("--json printed %q: %v", out, err)
			}
			json.Compact(&exp, want)
			if got.String() != exp.String() {
				t.Fatalf("--json printed\n%s\nwant the API's\n%s", got.String(), exp.String())
			}
		})
	}
}

func TestAdminResolvesNames(t *testing.T) {
	cp := newFakeCP(t)
	for _, tc := range []struct {
		name           string
		vault, machine string
		wantPath       string // of the machine request
		listed         bool   // whether the machines list was read to resolve
		code           int
		wantErr        string
	}{
		{"IDs need no lookup", admProdID, admWebID, "/api/v1/vaults/" + admProdID + "/machines/" + admWebID, false, cli.ExitOK, ""},
		{"names", "prod", "web-01", "/api/v1/vaults/" + admProdID + "/machines/" + admWebID, true, cli.ExitOK, ""},
		{"names ignore case", "PROD", "db-01", "/api/v1/vaults/" + admProdID + "/machines/" + admDBID, true, cli.ExitOK, ""},
		{"unknown machine", "prod", "mail-01", "", true, cli.ExitUsage, `no machine is named "mail-01" in vault prod; ` + "`coffer admin machines prod`"},
		{"unknown vault", "staging", "web-01", "", false, cli.ExitUsage, `no vault is named "staging"; ` + "`coffer admin vault list`"},
		{"ambiguous vault", "twin", "web-01", "", false, cli.ExitUsage, "2 vaults are named \"twin\" (IDs 1111111111111111aaaa, 2222222222222222bbbb)"},
		{"ambiguous machine", "1111111111111111aaaa", "NODE", "", true, cli.ExitUsage, "2 machines match \"NODE\""},
		{"unknown ID", admProdID, "eeeeeeeeeeeeeeeeeeee", "/api/v1/vaults/" + admProdID + "/machines/eeeeeeeeeeeeeeeeeeee", false, cli.ExitFailed, "no machine eeeeeeeeeeeeeeeeeeee (not_found)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(cp.requests())
			_, err := runAdmin("machine", tc.vault, tc.machine)
			if cli.ExitCode(err) != tc.code || (tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v (exit %d), want exit %d with %q", err, cli.ExitCode(err), tc.code, tc.wantErr)
			}
			listed, last := false, ""
			for _, r := range cp.requests()[before:] {
				listed = listed || strings.HasSuffix(r.path, "/machines")
				last = r.path
			}
			if listed != tc.listed || (tc.wantPath != "" && last != tc.wantPath) {
				t.Fatalf("listed machines %v (want %v), last request %s (want %s)", listed, tc.listed, last, tc.wantPath)
			}
		})
	}
}

// TestAdminRequests checks what each command sends: method, path, query,
// body and PIN header.
func TestAdminRequests(t *testing.T) {
	cp := newFakeCP(t)
	for _, tc := range []struct {
		args []string
		want sentReq // query and body compared when set; pin always
	}{
		{[]string{"vault", "create", "lab", "--recipient", "a@example.com,b@example.com", "--digest", "--no-security-features"},
			sentReq{method: "POST", path: "/api/v1/vaults",
				body: `{"name":"lab","alertRecipients":["a@example.com","b@example.com"],"alertDigest":true,"securityFeatures":false}`}},
		{[]string{"vault", "set", "prod", "--digest=false", "--recipient", ""},
			sentReq{method: "PATCH", path: "/api/v1/vaults/" + admProdID, body: `{"alertRecipients":[],"alertDigest":false}`}},
		{[]string{"vault", "set", "prod", "--security-features=false", "--pin", admPIN},
			sentReq{method: "PATCH", path: "/api/v1/vaults/" + admProdID, pin: admPIN, body: `{"securityFeatures":false}`}},
		{[]string{"policy", "assign", "prod", "web-01", "gold"},
			sentReq{method: "PUT", path: "/api/v1/vaults/" + admProdID + "/machines/" + admWebID + "/policy", body: `{"policy":"gold"}`}},
		{[]string{"policy", "assign", "prod", "web-01", "bronze", "--pin", admPIN},
			sentReq{method: "PUT", path: "/api/v1/vaults/" + admProdID + "/machines/" + admWebID + "/policy", body: `{"policy":"bronze","pin":"` + admPIN + `"}`}},
		{[]string{"policy", "delete", "prod", "old"},
			sentReq{method: "DELETE", path: "/api/v1/vaults/" + admProdID + "/policies/old"}},
		{[]string{"stop", "prod", "web-01"},
			sentReq{method: "POST", path: "/api/v1/vaults/" + admProdID + "/machines/" + admWebID + "/stop", body: `{"deleteData":false}`}},
		{[]string{"stop", "prod", "web-01", "--delete-data", "--pin", admPIN},
			sentReq{method: "POST", path: "/api/v1/vaults/" + admProdID + "/machines/" + admWebID + "/stop", pin: admPIN, body: `{"deleteData":true}`}},
		{[]string{"point", "delete", "prod", "web-01", "c0ffee11", "--pin", admPIN},
			sentReq{method: "DELETE", path: "/api/v1/vaults/" + admProdID + "/machines/" + admWebID + "/points/" + admPointB, pin: admPIN}},
		{[]string{"key", "undelete", "prod", "web-01", "ab34"},
			sentReq{method: "POST", path: "/api/v1/vaults/" + admProdID + "/machines/" + admWebID + "/deleted-keys/" + admKeyB + "/undelete"}},
		{[]string{"alerts", "prod", "--open"},
			sentReq{method: "GET", path: "/api/v1/vaults/" + admProdID + "/alerts", query: "acknowledged=false"}},
		{[]string{"jobs", "prod", "--machine", "DB-01", "--type", "backup", "--status", "failed", "--limit", "5", "--since", "2026-01-02T15:04:05+01:00"},
			sentReq{method: "GET", path: "/api/v1/vaults/" + admProdID + "/jobs",
				query: "limit=5&machine=" + admDBID + "&since=2026-01-02T14%3A04%3A05Z&status=failed&type=backup"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if _, err := runAdmin(tc.args...); err != nil {
				t.Fatal(err)
			}
			got := cp.last()
			var gb bytes.Buffer
			json.Compact(&gb, []byte(got.body))
			if got.method != tc.want.method || got.path != tc.want.path || got.pin != tc.want.pin ||
				(tc.want.query != "" && got.query != tc.want.query) || (tc.want.body != "" && gb.String() != tc.want.body) {
				t.Fatalf("sent %s %s?%s PIN %q body %s\nwant %s %s?%s PIN %q body %s",
					got.method, got.path, got.query, got.pin, gb.String(), tc.want.method, tc.want.path, tc.want.query, tc.want.pin, tc.want.body)
			}
		})
	}
}

func TestAdminErrors(t *testing.T) {
	cp := newFakeCP(t)
	machinePath := "/api/v1/vaults/" + admProdID + "/machines/" + admWebID
	cp.fail["POST "+machinePath+"/resume"] = func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>Bad Gateway</html>")
	}
	cp.fail["PUT /api/v1/vaults/"+admProdID+"/policies/gold"] = func(w http.ResponseWriter) {
		cp.json(w, http.StatusUnprocessableEntity, wire.Error{Code: wire.CodeValidation, Message: "the policy breaks these rules: ...",
			Details: []wire.Violation{
				{Field: "schedule.times", Rule: "schedule.times.max3", Message: "at most 3 times a day"},
				{Field: "retention.dailyDays", Rule: "retention.dailyDays.secureMin", Message: "keep points at least 7 days"},
			}})
	}
	cp.fail["POST /api/v1/vaults/"+admProdID+"/machines/"+admDBID+"/stop"] = func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "600")
		cp.json(w, http.StatusTooManyRequests, wire.Error{Code: wire.CodePINLocked, Message: "security PINs are locked for this vault"})
	}
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(policyFile, []byte(`{"schedule":{"frequency":"daily","times":["01:00","02:00","03:00","04:00"],"timeZone":"UTC"},"retention":{"dailyDays":1},"include":["/srv"],"throttle":{"enabled":false}}`), 0o600)
	badFile := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(badFile, []byte(`{"schedul":{}}`), 0o600)

	for _, tc := range []struct {
		args      []string
		code      int
		want      []string // substrings of the message, in order
		noRequest bool     // refused before asking the control plane
	}{
		{[]string{"vault", "set", "prod", "--security-features=false"}, cli.ExitFailed,
			[]string{"generate a security PIN (pin_required); get a PIN with `coffer admin pin prod` and pass it with --pin"}, false},
		{[]string{"stop", "prod", "web-01", "--delete-data", "--pin", "00000000"}, cli.ExitFailed,
			[]string{"(pin_invalid)", "`coffer admin pin prod`"}, false},
		{[]string{"stop", "prod", "DB-01", "--delete-data", "--pin", admPIN}, cli.ExitFailed,
			[]string{"(pin_locked)", "wait 10m0s", "`coffer admin pin prod`"}, false},
		{[]string{"policy", "delete", "prod", "daily"}, cli.ExitFailed, []string{"assign them another policy first (conflict)"}, false},
		{[]string{"resume", "prod", "web-01"}, cli.ExitFailed, []string{"<html>Bad Gateway</html> (http_502)"}, false},
		{[]string{"policy", "set", "prod", "gold", "-f", policyFile}, cli.ExitFailed, []string{
			"policy gold breaks 2 rule(s) (validation_failed)",
			"\n  schedule.times: at most 3 times a day [schedule.times.max3]",
			"\n  retention.dailyDays: keep points at least 7 days [retention.dailyDays.secureMin]"}, false},
		{[]string{"policy", "set", "prod", "gold", "-f", badFile}, cli.ExitUsage, []string{"unknown field"}, true},
		{[]string{"policy", "set", "prod", "gold"}, cli.ExitUsage, []string{"-f FILE"}, true},
		{[]string{"point", "delete", "prod", "web-01", admPointA}, cli.ExitUsage, []string{"needs a security PIN", "`coffer admin pin prod`"}, true},
		{[]string{"point", "delete", "prod", "web-01", "c0ffee", "--pin", admPIN}, cli.ExitUsage, []string{"2 recovery points start with c0ffee"}, false},
		{[]string{"stop", "prod", "web-01", "--delete-data"}, cli.ExitUsage, []string{"--delete-data needs a security PIN"}, true},
		{[]string{"stop", "prod", "web-01", "--pin", admPIN}, cli.ExitUsage, []string{"--pin is only for --delete-data"}, true},
		{[]string{"key", "undelete", "prod", "web-01", "ab"}, cli.ExitUsage, []string{"2 retired key files start with ab"}, false},
		{[]string{"key", "undelete", "prod", "web-01", "ffff"}, cli.ExitUsage, []string{"no retired key file ffff", "`coffer admin keys prod web-01`"}, false},
		{[]string{"vault", "set", "prod"}, cli.ExitUsage, []string{"nothing to change"}, true},
		{[]string{"jobs", "prod", "--type", "bakup"}, cli.ExitUsage, []string{`--type "bakup" is not a job type`}, true},
		{[]string{"jobs", "prod", "--since", "yesterday"}, cli.ExitUsage, []string{`--since "yesterday"`}, true},
		{[]string{"jobs", "prod", "--limit", "5000"}, cli.ExitUsage, []string{"--limit must be from 1 to 1000"}, true},
		{[]string{"machines"}, cli.ExitUsage, []string{"wrong number of arguments"}, true},
		{[]string{"vault", "lst"}, cli.ExitUsage, []string{`unknown command "lst"`}, true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			before := len(cp.requests())
			_, err := runAdmin(tc.args...)
			if cli.ExitCode(err) != tc.code {
				t.Fatalf("err = %v: exit %d, want %d", err, cli.ExitCode(err), tc.code)
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("message %q lacks %q", msg, w)
				}
				msg = msg[i+len(w):]
			}
			if sent := len(cp.requests()) - before; tc.noRequest && sent > 0 {
				t.Fatalf("%d requests sent for a mistake the CLI can see", sent)
			}
		})
	}
}

func TestAdminCredentialsFileIsPrivate(t *testing.T) {
	newFakeCP(t)
	dir := t.TempDir()
	t.Chdir(dir)
	existing := filepath.Join(dir, "old.json")
	os.WriteFile(existing, []byte("old"), 0o644)
	expiry := admT0.Add(48 * time.Hour).Local().Format(detailTime)
	for _, tc := range []struct {
		args     []string
		file     string
		wantText string
	}{
		{[]string{"credentials", "prod"}, filepath.Join(dir, "prod.credentials.json"), "valid until " + expiry},
		{[]string{"credentials", "prod", "-o", existing}, existing, "coffer register --credentials " + existing},
		{[]string{"credentials", "prod", "-o", "c.json", "--json"}, filepath.Join(dir, "c.json"), `"file": ` + jsonText(filepath.Join(dir, "c.json"))},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := runAdmin(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			shown := tc.file
			if slices.Contains(tc.args, "--json") { // a Windows path's backslashes are escaped
				shown = strings.Trim(jsonText(tc.file), `"`)
			}
			if !strings.Contains(out, tc.wantText) || !strings.Contains(out, shown) || strings.Contains(out, "s3cret") {
				t.Fatalf("output %q: want %q and the file, never the secret", out, tc.wantText)
			}
			fi, err := os.Stat(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s has mode %v, want 0600", tc.file, fi.Mode().Perm())
			}
			var c wire.Credentials
			b, _ := os.ReadFile(tc.file)
			if err := json.Unmarshal(b, &c); err != nil || c.Secret != "s3cret" || c.VaultID != admProdID {
				t.Fatalf("file holds %q (%v), want the API's credentials", b, err)
			}
		})
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".coffer-credentials-*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestAdminParseSince(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"24h", now.Add(-24 * time.Hour), true},
		{"90m", now.Add(-90 * time.Minute), true},
		{"7d", now.Add(-7 * 24 * time.Hour), true},
		{"2026-05-01T00:00:00Z", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), true},
		{"-3h", time.Time{}, false},
		{"0d", time.Time{}, false},
		{"2026-05-01", time.Time{}, false},
		{"week", time.Time{}, false},
	} {
		got, err := parseSince(tc.in, now)
		if (err == nil) != tc.ok || (tc.ok && !got.Equal(tc.want)) {
			t.Errorf("parseSince(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("parseSince(%q): %v is not a usage error", tc.in, err)
		}
	}
}

// The help of every command that takes a PIN says when one is needed and
// what wrong ones cost.
func TestAdminHelpStatesThePINRules(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"pin", "--help"}, {"stop", "--help"}, {"point", "delete", "--help"},
		{"policy", "assign", "--help"}, {"policy", "set", "--help"}, {"policy", "delete", "--help"}} {
		out, err := runAdmin(args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"shortens any machine's effective", "After 5 wrong PINs", "refused for 15 minutes"} {
			if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
				t.Errorf("coffer admin %s: help lacks %q:\n%s", strings.Join(args, " "), want, out)
			}
		}
	}
}

// The top-level help also says who can read passphrases and where retired
// key files go.
func TestAdminHelpStatesKeyRules(t *testing.T) {
	out, err := runAdmin("--help")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"Coffer Machine Passphrase", "only that machine can read or write", "coffer admin key undelete", "soft-delete period"} {
		if !strings.Contains(text, want) {
			t.Errorf("coffer admin --help lacks %q:\n%s", want, out)
		}
	}
}

// jsonText is s as a JSON string, quotes included.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
