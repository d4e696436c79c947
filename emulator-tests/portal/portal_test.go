// Package portal drives the vault portal in a real browser (Debian's
// Chromium, through chromedp) against the whole local stack: Azurite, the
// Service Bus and Key Vault emulators, the SMTP sink, a control plane in
// this process and a machine that registers and backs up with the real
// coffer CLI. It saves a screenshot of every page and runs a basic
// accessibility check on each.
package portal

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/locate"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

//go:embed a11y.js
var a11yCheck string

var (
	coffer   string
	chromium string
	st       *stack.Stack
)

// ScreenshotsEnv names the folder the test saves its screenshots in; by
// default coffer-portal-screenshots in the temporary folder.
const ScreenshotsEnv = "COFFER_PORTAL_SCREENSHOTS"

// UpdateReadmeScreenshotsEnv, set to 1, makes the test also write the
// Contributor's overview and machine pages over docs/images/portal-*.png,
// the screenshots the README and docs/portal.md show, so they come from
// the browser on the local stack and are never edited by hand.
const UpdateReadmeScreenshotsEnv = "COFFER_UPDATE_README_SCREENSHOTS"

// readmeScreenshots are the pages, as check names them, that the README's
// images show, as the Contributor sees them.
var readmeScreenshots = []string{"overview", "machine"}

// readmeScreenshot says where the screenshot of page name, seen by who,
// goes in the repository, when UpdateReadmeScreenshotsEnv asks for it.
func readmeScreenshot(who, name string) (string, bool, error) {
	if os.Getenv(UpdateReadmeScreenshotsEnv) != "1" || who != "contributor" || !slices.Contains(readmeScreenshots, name) {
		return "", false, nil
	}
	dir, err := locate.Dir()
	if err != nil {
		return "", false, fmt.Errorf("%s=1: find the repository: %w", UpdateReadmeScreenshotsEnv, err)
	}
	images := filepath.Join(filepath.Dir(dir), "docs", "images")
	if st, err := os.Stat(images); err != nil || !st.IsDir() {
		return "", false, fmt.Errorf("%s=1: %s is not the repository's image folder (%v); run the test inside the Coffer repository", UpdateReadmeScreenshotsEnv, images, err)
	}
	return filepath.Join(images, "portal-"+name+".png"), true, nil
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	flagShort := false
	for _, a := range os.Args {
		flagShort = flagShort || a == "-test.short=true" || a == "-test.short"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" || flagShort {
		// The test skips with one line; nothing to start.
		return m.Run()
	}
	return stack.RunStories(m, "coffer-portal-", func(c string, s *stack.Stack) { coffer, st = c, s })
}

const securityAdminToken = "security-admin-token-in-process-0123456789"

// world is a control plane in this process on the stack, served over
// HTTP on a loopback port, and an admin client for set-up and checks.
type world struct {
	t     *testing.T
	URL   string
	Admin *cpclient.Client
	env   []string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := st.Env()
	env[config.TokenContributor] = inproc.ContributorToken
	env[config.TokenOperator] = inproc.OperatorToken
	env[config.TokenReader] = inproc.ReaderToken
	env[config.TokenSecurityAdmin] = securityAdminToken
	env[config.AlertsQueue] = "queue.1"
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	env[config.PublicURL] = srv.URL
	a := inproc.New(t, env, time.Now, slog.New(slog.DiscardHandler))
	handler = a.Handler()
	// The alerts queue is received here, so alert emails reach the SMTP sink.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.RunTriggers(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &world{t: t, URL: srv.URL, Admin: &cpclient.Client{BaseURL: srv.URL, Token: inproc.ContributorToken}, env: st.Environ()}
}

func (w *world) api(method, path string, body, out any) {
	w.t.Helper()
	if _, err := w.Admin.Do(w.t.Context(), method, path, body, out); err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
}

// policyVSS is a stored policy's useVSS, read through the API.
func policyVSS(w *world, vaultID, name string) *bool {
	w.t.Helper()
	var doc struct {
		Policy struct {
			UseVSS *bool `json:"useVSS"`
		} `json:"policy"`
	}
	w.api("GET", "/api/v1/vaults/"+vaultID+"/policies/"+name, nil, &doc)
	return doc.Policy.UseVSS
}

// machine is one registered agent.
type machine struct {
	w   *world
	Dir string
	ID  string
}

func (m *machine) coffer(args ...string) (string, string, error) {
	cmd := exec.Command(coffer, append(args, "--config-dir", m.Dir)...)
	cmd.Env = stack.AgentEnv(m.w.env, m.Dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (w *world) register(vaultID, name string) (*machine, string) {
	w.t.Helper()
	dir := w.t.TempDir()
	var cr wire.Credentials
	w.api("POST", "/api/v1/vaults/"+vaultID+"/credentials", nil, &cr)
	b, _ := json.Marshal(cr)
	creds := filepath.Join(dir, "vault.credentials")
	if err := os.WriteFile(creds, b, 0o600); err != nil {
		w.t.Fatal(err)
	}
	m := &machine{w: w, Dir: filepath.Join(dir, "config")}
	out, errOut, err := m.coffer("register", "--credentials", creds, "--name", name, "--json")
	if err != nil {
		w.t.Fatalf("register: %v\n%s%s", err, out, errOut)
	}
	var reg map[string]string
	if err := json.Unmarshal([]byte(out), &reg); err != nil {
		w.t.Fatalf("register --json: %q", out)
	}
	m.ID = reg["machineId"]
	return m, reg["secretName"]
}

// browser is one Chromium with its own profile, so its cookies are its own.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string // screenshots
	who  string // for screenshot names

	mu     sync.Mutex
	errors []string      // script exceptions and the console's errors, CSP violations among them
	more   chan struct{} // signalled when an error is recorded
}

// listen records what the page reports as an error. Failed requests (the
// 401 before sign-in, the refused forged posts) are the network's and are
// expected; everything else is a fault of the page.
func (b *browser) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
		if ex := ev.ExceptionDetails.Exception; ex != nil && ex.Description != "" {
			msg += " " + ex.Description
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level != cdplog.EntryLevelError || ev.Entry.Source == cdplog.EntrySourceNetwork {
			return
		}
		msg = string(ev.Entry.Source) + ": " + ev.Entry.Text
	default:
		return
	}
	b.mu.Lock()
	b.errors = append(b.errors, msg)
	b.mu.Unlock()
	select {
	case b.more <- struct{}{}:
	default:
	}
}

// waitError waits until an error containing s is recorded, and takes the
// errors recorded by then.
func (b *browser) waitError(s string) []string {
	var seen []string
	timeout := time.After(30 * time.Second)
	for {
		seen = append(seen, b.takeErrors()...)
		if slices.ContainsFunc(seen, func(e string) bool { return strings.Contains(e, s) }) {
			return seen
		}
		select {
		case <-b.more:
		case <-timeout:
			return seen
		}
	}
}

// takeErrors returns the errors recorded so far and forgets them.
func (b *browser) takeErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	errs := b.errors
	b.errors = nil
	return errs
}

func newBrowser(t *testing.T, base, shots, who string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.Flag("headless", "new"), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{t: t, base: base, dir: shots, who: who, more: make(chan struct{}, 1)}
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithListener(b.listen))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b.ctx = ctx
	enableLog := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(ctx, enableLog); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s (%s): %v\n%s", what, b.who, err, b.pageText())
	}
}

// eval evaluates js in the page; a promise is awaited.
func eval[T any](b *browser, what, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s (%s): %v", what, b.who, err)
	}
	return v
}

// waitFor waits until the JavaScript condition is true.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting until %s (%s): %v\n%s", what, b.who, err, b.pageText())
	}
}

func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
	if err != nil {
		return "(page text unavailable: " + err.Error() + ")"
	}
	if len(s) > 4000 {
		s = s[:4000] + "…"
	}
	return "page:\n" + s
}

// route opens a page of the portal by its fragment and waits for its
// heading.
func (b *browser) route(fragment, heading string) {
	b.t.Helper()
	js, _ := json.Marshal(fragment)
	eval[bool](b, "open "+fragment, `(location.hash = `+string(js)+`, true)`)
	b.waitForHeading(heading)
}

func (b *browser) waitForHeading(heading string) {
	b.t.Helper()
	h, _ := json.Marshal(heading)
	b.waitFor("the page "+heading+" is shown", `(() => { const h = document.querySelector('main h1'); return !!h && h.textContent.startsWith(`+string(h)+`); })()`)
}

// check runs the accessibility check and saves a screenshot named name.
func (b *browser) check(name string) {
	b.t.Helper()
	problems := eval[[]string](b, "accessibility check", a11yCheck)
	for _, p := range problems {
		b.t.Errorf("accessibility, %s page (%s): %s", name, b.who, p)
	}
	for _, e := range b.takeErrors() {
		b.t.Errorf("the %s page (%s) reported an error: %s", name, b.who, e)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot of %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, b.who+"-"+name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	if path, ok, err := readmeScreenshot(b.who, name); err != nil {
		b.t.Fatal(err)
	} else if ok {
		if err := os.WriteFile(path, png, 0o644); err != nil {
			b.t.Fatalf("update the README's screenshot: %v", err)
		}
		b.t.Logf("updated %s", path)
	}
}

// tabTo presses Tab from the top of the page until selector has the
// focus, at most max times, as a keyboard user would.
func (b *browser) tabTo(selector string, max int) {
	b.t.Helper()
	eval[bool](b, "focus the top", `(document.activeElement && document.activeElement.blur(), window.focus(), true)`)
	for range max {
		b.do("press Tab", chromedp.KeyEvent("\t"))
		if eval[bool](b, "focus", `document.activeElement === document.querySelector(`+q(selector)+`)`) {
			return
		}
	}
	b.t.Fatalf("%d presses of Tab did not reach %s (%s); focus is on %s", max, selector, b.who,
		eval[string](b, "focus", `document.activeElement ? document.activeElement.outerHTML.slice(0, 100) : "nothing"`))
}

func (b *browser) count(selector string) int {
	b.t.Helper()
	s, _ := json.Marshal(selector)
	return eval[int](b, "count "+selector, `document.querySelectorAll(`+string(s)+`).length`)
}

func (b *browser) text(selector string) string {
	b.t.Helper()
	s, _ := json.Marshal(selector)
	return eval[string](b, "text of "+selector, `(document.querySelector(`+string(s)+`) || {textContent: ""}).textContent`)
}

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

// The story: a Contributor signs in, creates a vault and a policy,
// a machine backs up through the real CLI, the pages show it; a failed
// backup shows its job and alert, which is acknowledged; a point is
// deleted with a PIN and undeleted. A Reader is offered no change, and
// forged form posts are refused.
func TestPortalInARealBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Chromium and the local Azure emulators; skipped under -short (make unit), run by make test")
	}
	if chromium == "" {
		t.Skip("Chromium is not installed (make deps installs it: apt-get install -y chromium); the portal's browser test is skipped")
	}
	shots := os.Getenv(ScreenshotsEnv)
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "coffer-portal-screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of every page: %s", shots)
	w := newWorld(t)

	// Sign in as Contributor with the token, using the keyboard.
	c := newBrowser(t, w.URL, shots, "contributor")
	c.do("open the portal", chromedp.Navigate(w.URL+"/portal/"), chromedp.WaitVisible("#signin-token"))
	c.check("signin")
	c.do("sign in", chromedp.Focus("#signin-token"), chromedp.KeyEvent(inproc.ContributorToken), chromedp.KeyEvent("\r"))
	c.waitForHeading("Overview")
	if who := c.text("#who-name"); !strings.Contains(who, "Backup Contributor") {
		t.Fatalf("signed in as %q", who)
	}
	if href := eval[string](c, "location", `location.href`); strings.Contains(href, "token") || strings.Contains(href, inproc.ContributorToken) {
		t.Fatalf("the token is in the address: %s", href)
	}
	// The CSP refuses a script put into the page (as an injection would),
	// and the browser reports the violation, which check would catch.
	if ran := eval[bool](c, "inject an inline script", `(() => {
		const s = document.createElement('script');
		s.textContent = 'window.injected = true';
		document.body.append(s);
		return window.injected === true;
	})()`); ran {
		t.Error("an inline script ran despite the Content-Security-Policy")
	}
	if errs := c.waitError("Content Security Policy"); !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "Content Security Policy") }) {
		t.Errorf("the blocked inline script was not reported as a CSP violation: %q", errs)
	}

	// Create a vault.
	vaultName := fmt.Sprintf("portal-%d", time.Now().UnixNano()%1_000_000_000)
	// Multi-user authorization off: a PIN alone then allows destructive
	// operations, the flow this story follows.
	c.do("create a vault", chromedp.SendKeys("#new-vault-name", vaultName), chromedp.SendKeys("#new-vault-recipients", "ops@branch.example"),
		chromedp.Click("#new-vault-mua"), chromedp.Click(`button[data-action="createVault"]`))
	c.waitFor("the new vault is listed", `[...document.querySelectorAll('main h2')].some(h => h.textContent === `+q(vaultName)+`)`)
	var vaults []wire.Vault
	w.api("GET", "/api/v1/vaults", nil, &vaults)
	var v wire.Vault
	for _, x := range vaults {
		if x.Name == vaultName {
			v = x
		}
	}
	if v.ID == "" || v.MultiUserAuth || len(v.AlertRecipients) != 1 {
		t.Fatalf("vault %s was not created as asked (recipients, multi-user authorization off): %+v", vaultName, vaults)
	}

	// A machine registers through the real CLI.
	m, secret := w.register(v.ID, "branch-portal")
	src := filepath.Join(t.TempDir(), "shares")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(src, treegen.Options{Files: 30, MaxSize: 64 << 10, Seed: 12}); err != nil {
		t.Fatal(err)
	}

	// A policy made in the editor: a broken rule shows its message next to
	// its field; fixed, it saves.
	c.route(vaultLinkJS(v.ID, "policies"), "Policies of "+vaultName)
	c.do("start a new policy", chromedp.SendKeys("#new-policy-name", "office"), chromedp.Click(`form[data-action="putPolicy"] button`))
	c.waitFor("the policy editor", `!!document.getElementById('pf-schedule-times')`)
	c.do("fill the policy with a broken time",
		chromedp.SetValue("#pf-schedule-times", "25:00"),
		chromedp.SetValue("#pf-schedule-timeZone", "Europe/London"),
		chromedp.SetValue("#pf-include", src),
		chromedp.Click(`#policy-form button[type="submit"]`))
	c.waitFor("the time's rule is shown next to its field", `document.getElementById('pf-schedule-times-error').textContent.trim() !== ''`)
	c.check("policy-invalid")
	c.do("fix the time, turn shadow copies off and save", chromedp.SetValue("#pf-schedule-times", "22:00"), chromedp.Click("#pf-useVSS"),
		chromedp.Click(`#policy-form button[type="submit"]`))
	c.waitFor("the policy is saved", `document.getElementById('status').textContent.includes('Policy office saved')`)
	if vss := policyVSS(w, v.ID, "office"); vss == nil || *vss {
		t.Fatalf("the editor saved useVSS %v, want false", vss)
	}

	// Assigned on the machine page.
	c.route(vaultLinkJS(v.ID, "machines/"+m.ID), "Machine branch-portal")
	c.do("assign the policy", chromedp.SetValue("#assign-policy", "office"), chromedp.Click(`button[data-action="assignPolicy"]`))
	c.waitFor("the policy is assigned", `document.getElementById('item-policy').textContent === 'office'`)

	// Two backups with the real CLI.
	for i := range 2 {
		if i == 1 {
			if err := os.WriteFile(filepath.Join(src, "changed.txt"), []byte("a change between the backups\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if out, errOut, err := m.coffer("backup", "--json"); err != nil {
			t.Fatalf("backup %d: %v\n%s%s", i+1, err, out, errOut)
		}
	}
	var got wire.Machine
	w.api("GET", "/api/v1/vaults/"+v.ID+"/machines/"+m.ID, nil, &got)
	if got.Item == nil || got.Item.Points != 2 || got.Item.StorageBytes == 0 {
		t.Fatalf("the machine's item after two backups: %+v", got.Item)
	}

	// The overview and the machine page show its size and point count.
	c.route("#/", "Overview")
	row := `tr[data-machine="` + m.ID + `"]`
	c.waitFor("the machine on the overview", `!!document.querySelector(`+q(row)+`)`)
	if n := c.text(row + " td.points"); n != "2" {
		t.Errorf("overview: %s points, want 2", n)
	}
	if b := eval[string](c, "storage", `document.querySelector(`+q(row+" td.storage")+`).dataset.bytes`); b != fmt.Sprint(got.Item.StorageBytes) {
		t.Errorf("overview: %s bytes, want %d", b, got.Item.StorageBytes)
	}
	if s := c.text(row + " td.storage"); s == "" || s == "0 B" {
		t.Errorf("overview shows storage %q", s)
	}
	c.check("overview")
	// The keyboard alone reaches the machine's link and opens it.
	c.tabTo(row+" th a", 40)
	c.do("open the machine with Enter", chromedp.KeyEvent("\r"))
	c.waitForHeading("Machine branch-portal")
	c.route("#/", "Overview")
	c.waitFor("the machine on the overview", `!!document.querySelector(`+q(row)+`)`)
	c.do("open the machine from the overview", chromedp.Click(row+" th a"))
	c.waitForHeading("Machine branch-portal")
	if n := c.text("#item-points"); n != "2" {
		t.Errorf("machine page: %s points, want 2", n)
	}
	if s := c.text("#item-storage"); !strings.Contains(s, fmt.Sprintf("(%s bytes)", commas(got.Item.StorageBytes))) {
		t.Errorf("machine page storage %q, want %d bytes", s, got.Item.StorageBytes)
	}
	if n := c.count("#points tbody tr"); n != 2 {
		t.Errorf("machine page lists %d points", n)
	}
	// The machine's backups are charted (uPlot, vendored) with their
	// numbers beside: two completed backups.
	c.waitFor("the backup charts are drawn", `['chart-duration', 'chart-throughput', 'chart-uploaded'].every(id => !!document.querySelector('#' + id + ' canvas'))`)
	if n := c.count("#chart-duration details tbody tr"); n != 2 {
		t.Errorf("the duration chart's table has %d rows, want the 2 backups", n)
	}
	// Storage over time: the daily samples (none yet, unless the monitor
	// ran), then the size now.
	c.waitFor("the storage chart is drawn", `!!document.querySelector('#chart-storage canvas')`)
	if n := c.count("#chart-storage details tbody tr"); n < 1 {
		t.Errorf("the storage chart's table has %d rows, want at least the size now", n)
	}
	if got.Item.NextRun == nil {
		t.Error("the API gives no next run for a protected machine with a daily policy")
	} else if s, want := c.text("#item-next"), got.Item.NextRun.UTC().Format("2006-01-02 15:04:05 UTC"); s != want {
		t.Errorf("machine page: next backup %q, want %q", s, want)
	}
	c.check("machine")

	// The policy editor previews what a retention change keeps, before
	// saving: both points are a few seconds old, so a 7-day policy keeps
	// them.
	c.route(vaultLinkJS(v.ID, "policies/office"), "Policies of "+vaultName)
	c.do("preview a shorter retention", chromedp.SetValue("#pf-retention-dailyDays", "7"), chromedp.Click("#preview-retention"))
	summary := `#policy-preview p.preview-summary[data-machine="` + m.ID + `"]`
	c.waitFor("the preview", `!!document.querySelector(`+q(summary)+`)`)
	if s := c.text(summary); s != "Keeps 2 of 2 points (now 2)." {
		t.Errorf("preview: %q", s)
	}
	c.check("policy-preview")

	// A failed backup: the passphrase in Key Vault no longer opens the
	// repository. Its job and its alert are shown.
	kv, err := azsecrets.NewClient(st.KeyVault.URL(), keyvault.Credential(), st.KeyVault.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	right, err := kv.GetSecret(t.Context(), secret, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := "not the passphrase of this machine"
	if _, err := kv.SetSecret(t.Context(), secret, azsecrets.SetSecretParameters{Value: &wrong}, nil); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := m.coffer("backup"); err == nil {
		t.Fatalf("a backup with the wrong passphrase succeeded: %s", errOut)
	}
	if _, err := kv.SetSecret(t.Context(), secret, azsecrets.SetSecretParameters{Value: right.Value}, nil); err != nil {
		t.Fatal(err)
	}
	var failed []wire.Job
	w.api("GET", "/api/v1/vaults/"+v.ID+"/jobs?machine="+m.ID+"&status=failed", nil, &failed)
	if len(failed) != 1 {
		t.Fatalf("failed jobs: %+v", failed)
	}
	job := failed[0]
	c.route(vaultLinkJS(v.ID, "jobs?status=failed"), "Jobs of "+vaultName)
	jobRow := `tr[data-job="` + job.ID + `"]`
	c.waitFor("the failed job is listed", `!!document.querySelector(`+q(jobRow)+`)`)
	if s := c.text(jobRow + " td.status"); s != "failed" {
		t.Errorf("job status %q", s)
	}
	if s := c.text(jobRow + " td.error-cell"); !strings.Contains(s, job.ErrorCode) || job.ErrorCode == "" {
		t.Errorf("job error %q, want code %q", s, job.ErrorCode)
	}
	if n := c.count("tr[data-job]"); n != 1 {
		t.Errorf("the status filter shows %d jobs, want the 1 failed", n)
	}
	// Today: 2 of the 3 finished backups succeeded.
	c.waitFor("the success chart is drawn", `!!document.querySelector('#chart-success canvas')`)
	if s := c.text("#chart-success details tbody td"); s != "67" {
		t.Errorf("today's success rate %q, want 67", s)
	}
	c.check("jobs")

	var alerts []wire.Alert
	w.api("GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertJobFailed, nil, &alerts)
	var alert wire.Alert
	for _, a := range alerts {
		if a.JobID == job.ID {
			alert = a
		}
	}
	if alert.ID == "" {
		t.Fatalf("no alert for the failed job: %+v", alerts)
	}
	c.route(vaultLinkJS(v.ID, "alerts?show=all"), "Alerts of "+vaultName)
	alertRow := `tr[data-alert="` + alert.ID + `"]`
	c.waitFor("the alert is listed", `!!document.querySelector(`+q(alertRow)+`)`)
	if s := eval[string](c, "alert's job", `document.querySelector(`+q(alertRow)+`).dataset.job`); s != job.ID {
		t.Errorf("the alert names job %q, want %q", s, job.ID)
	}
	c.check("alerts")

	// The alert's email links to the job in the portal.
	link := emailLink(t, alert.ID)
	if !strings.HasPrefix(link, w.URL+"/portal/#/v/"+v.ID+"/jobs?") {
		t.Fatalf("the email links to %s", link)
	}
	eval[bool](c, "follow the email's link", `(location.href = `+q(link)+`, true)`)
	c.waitForHeading("Jobs of " + vaultName)
	c.waitFor("the email's job is marked", `!!document.querySelector(`+q(`tr.highlight[data-job="`+job.ID+`"]`)+`)`)
	c.check("jobs-from-email")

	c.route(vaultLinkJS(v.ID, "alerts?show=all"), "Alerts of "+vaultName)
	c.waitFor("the alert is listed", `!!document.querySelector(`+q(alertRow)+`)`)
	if n := c.count(alertRow + ` button[data-action="ackFalsePositive"]`); n != 0 {
		t.Error("a failed job's alert offers 'Not ransomware (false positive)'")
	}
	c.do("acknowledge the alert", chromedp.Click(alertRow+` button[data-action="ackAlert"]`))
	c.waitFor("the alert is acknowledged", `(document.querySelector(`+q(alertRow+" td.ack")+`) || {textContent: ''}).textContent.startsWith('acknowledged by token:backup-contributor')`)
	w.api("GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertJobFailed, nil, &alerts)
	for _, a := range alerts {
		if a.ID == alert.ID && !a.Acknowledged {
			t.Error("the alert is not acknowledged in the API")
		}
	}

	// Generate a PIN on the Security page; delete a point with it, see it
	// marked, undelete it.
	c.route(vaultLinkJS(v.ID, "security"), "Security of "+vaultName)
	c.do("generate a PIN", chromedp.Click("#generate-pin"))
	c.waitFor("the PIN is shown", `/^[0-9]{8}$/.test(document.getElementById('pin-output').textContent)`)
	pin := c.text("#pin-output")
	c.check("security")

	var points []wire.Point
	w.api("GET", "/api/v1/vaults/"+v.ID+"/machines/"+m.ID+"/points", nil, &points)
	if len(points) != 2 {
		t.Fatalf("points: %+v", points)
	}
	p := points[0]
	pointRow := `tr[data-point="` + p.ID + `"]`
	c.route(vaultLinkJS(v.ID, "machines/"+m.ID), "Machine branch-portal")
	c.do("ask to delete a point", chromedp.Click(pointRow+` button[data-action="deletePoint"]`), chromedp.WaitVisible("#pin-input"))
	c.check("machine-pin")
	c.do("enter the PIN", chromedp.KeyEvent(pin), chromedp.KeyEvent("\r"))
	c.waitFor("the point is marked deleted", `!!document.querySelector(`+q(pointRow+".deleted")+`)`)
	if s := c.text(pointRow + " td.state"); !strings.Contains(s, "deleted") {
		t.Errorf("deleted point's state %q", s)
	}
	if n := c.text("#item-points"); n != "1" {
		t.Errorf("after deleting one: %s points, want 1", n)
	}
	c.check("machine-deleted-point")
	c.do("undelete it", chromedp.Click(pointRow+` button[data-action="undeletePoint"]`))
	c.waitFor("the point is active again", `!!document.querySelector(`+q(pointRow+":not(.deleted)")+`) && document.getElementById('item-points').textContent === '2'`)
	w.api("GET", "/api/v1/vaults/"+v.ID+"/machines/"+m.ID+"/points", nil, &points)
	if len(points) != 2 {
		t.Errorf("after undelete the API lists %d active points", len(points))
	}

	// A forged form post from the Contributor's own browser (no CSRF
	// header) is refused, and changes nothing.
	forged := vaultName + "-forged"
	c.forgeFormPost("/api/v1/vaults", map[string]string{"name": forged})
	w.api("GET", "/api/v1/vaults", nil, &vaults)
	for _, x := range vaults {
		if x.Name == forged {
			t.Fatal("a forged form post created a vault")
		}
	}

	// Multi-user authorization on: deleting a point is sent for approval
	// instead of asking for a PIN; a Backup Security Admin, signed in by a
	// link, approves it on the Approvals page and the point is deleted.
	on := true
	w.api("PATCH", "/api/v1/vaults/"+v.ID, wire.VaultUpdate{MultiUserAuth: &on}, nil)
	c.route(vaultLinkJS(v.ID, "machines/"+m.ID), "Machine branch-portal")
	c.do("ask to delete a point", chromedp.Click(pointRow+` button[data-action="deletePoint"]`))
	c.waitFor("the deletion is sent for approval", `document.getElementById('status').textContent.includes('Sent for approval')`)
	if open := eval[bool](c, "PIN dialog", `document.getElementById('pin-dialog').open`); open {
		t.Error("a PIN was asked in a vault with multi-user authorization")
	}
	if n := c.text("#item-points"); n != "2" {
		t.Errorf("before approval: %s points, want 2", n)
	}
	var adminLink struct{ URL string }
	if err := postLink(w.URL, securityAdminToken, &adminLink); err != nil {
		t.Fatal(err)
	}
	sa := newBrowser(t, w.URL, shots, "security-admin")
	sa.do("open the sign-in link", chromedp.Navigate(adminLink.URL))
	sa.waitForHeading("Overview")
	sa.route(vaultLinkJS(v.ID, "approvals"), "Approvals of "+vaultName)
	sa.waitFor("the request is listed", `document.querySelectorAll('tr[data-approval] button[data-action="approve"]').length === 2`)
	sa.check("approvals")
	sa.do("approve it", chromedp.SendKeys(`tr[data-approval] input`, "checked with the branch manager"), chromedp.Click(`tr[data-approval] button[data-action="approve"]`))
	sa.waitFor("the request is executed", `document.getElementById('status').textContent.startsWith('Approved')`)
	w.api("GET", "/api/v1/vaults/"+v.ID+"/machines/"+m.ID+"/points", nil, &points)
	if len(points) != 1 {
		t.Errorf("after approval the API lists %d active points, want 1", len(points))
	}
	c.route(vaultLinkJS(v.ID, "approvals?status="), "Approvals of "+vaultName)
	c.waitFor("the executed request is listed", `[...document.querySelectorAll('tr[data-approval] td.status')].some(td => td.textContent.startsWith('executed'))`)
	if n := c.count(`button[data-action="approve"]`); n != 0 {
		t.Errorf("a Contributor without the Security Admin role is offered %d approvals", n)
	}
	c.route(vaultLinkJS(v.ID, "machines/"+m.ID), "Machine branch-portal")
	c.do("undelete it", chromedp.Click(pointRow+` button[data-action="undeletePoint"]`))
	c.waitFor("the point is active again", `!!document.querySelector(`+q(pointRow+":not(.deleted)")+`) && document.getElementById('item-points').textContent === '2'`)

	// As Reader, by a one-time sign-in link: no mutating control on any
	// page, and a forged form post is refused.
	var signin struct{ URL string }
	if err := postLink(w.URL, inproc.ReaderToken, &signin); err != nil {
		t.Fatal(err)
	}
	r := newBrowser(t, w.URL, shots, "reader")
	r.do("open the sign-in link", chromedp.Navigate(signin.URL))
	r.waitForHeading("Overview")
	if href := eval[string](r, "location", `location.href`); strings.Contains(href, "signin=") {
		t.Errorf("the sign-in code stayed in the address: %s", href)
	}
	if who := r.text("#who-name"); !strings.Contains(who, "Backup Reader") {
		t.Fatalf("signed in as %q", who)
	}
	pages := []struct{ fragment, heading, name string }{
		{"#/", "Overview", "overview"},
		{vaultLinkJS(v.ID, "machines/"+m.ID), "Machine branch-portal", "machine"},
		{vaultLinkJS(v.ID, "jobs"), "Jobs of " + vaultName, "jobs"},
		{vaultLinkJS(v.ID, "alerts?show=all"), "Alerts of " + vaultName, "alerts"},
		{vaultLinkJS(v.ID, "policies/office"), "Policies of " + vaultName, "policies"},
		{vaultLinkJS(v.ID, "security"), "Security of " + vaultName, "security"},
		{vaultLinkJS(v.ID, "approvals?status="), "Approvals of " + vaultName, "approvals"},
	}
	for _, pg := range pages {
		r.route(pg.fragment, pg.heading)
		if pg.name == "policies" {
			r.waitFor("the policy is shown", `!!document.getElementById('policy-form')`)
			if n := r.count("#policy-form :is(input, select, textarea):enabled"); n != 0 {
				t.Errorf("reader: %d policy fields can be edited", n)
			}
		}
		if n := r.count("[data-action]"); n != 0 {
			t.Errorf("reader: the %s page offers %d changes: %s", pg.name, n, eval[string](r, "actions", `[...document.querySelectorAll('[data-action]')].map(e => e.outerHTML.slice(0, 80)).join('\n')`))
		}
		r.check(pg.name)
	}
	// The same portal under /api/portal/, where the Functions host forwards
	// requests in Azure, with the same session.
	r.do("open the portal under /api/portal/", chromedp.Navigate(w.URL+"/api/portal/"))
	r.waitForHeading("Overview")
	r.waitFor("the vault is listed under /api/portal/", `!!document.querySelector(`+q(`section[data-vault="`+v.ID+`"]`)+`)`)
	// The Reader's forged post to stop protection (an Operator's change).
	r.forgeFormPost("/api/v1/vaults/"+v.ID+"/machines/"+m.ID+"/stop", map[string]string{"deleteData": "false"})
	w.api("GET", "/api/v1/vaults/"+v.ID+"/machines/"+m.ID, nil, &got)
	if got.State != wire.MachineProtected {
		t.Errorf("after the Reader's forged post the machine is %s", got.State)
	}
	// Even with the page's CSRF token, the server refuses the Reader.
	status := eval[float64](r, "stop with the CSRF token", `(async () => {
		const s = await (await fetch('/portal/session')).json();
		const res = await fetch('/api/v1/vaults/`+v.ID+`/machines/`+m.ID+`/stop', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Coffer-CSRF': s.csrf}, body: '{"deleteData":false}'});
		return res.status;
	})()`)
	if status != http.StatusForbidden {
		t.Errorf("the Reader's stop with the CSRF token: HTTP %v, want 403", status)
	}

	// A running backup's progress, live. The editor turns on the policy's
	// bandwidth limit at its lowest (512 Kbps, about 64 KB/s) and a
	// megabyte of fresh random data makes the backup last some seconds; the
	// jobs page, left alone, shows the job running with a progress bar and
	// a rate, then completed.
	c.route(vaultLinkJS(v.ID, "policies/office"), "Policies of "+vaultName)
	c.do("limit the bandwidth", chromedp.Click("#pf-throttle-enabled"), chromedp.Click("#pf-throttle-workDays-monday"),
		chromedp.SetValue("#pf-throttle-workStart", "09:00"), chromedp.SetValue("#pf-throttle-workEnd", "17:00"),
		chromedp.SetValue("#pf-throttle-workKbps", "512"), chromedp.SetValue("#pf-throttle-nonWorkKbps", "512"),
		chromedp.Click(`#policy-form button[type="submit"]`))
	c.waitFor("the policy is saved", `document.getElementById('status').textContent.includes('Policy office saved')`)
	// Saving the policy again from the editor keeps what it did not touch.
	if vss := policyVSS(w, v.ID, "office"); vss == nil || *vss {
		t.Errorf("saving the bandwidth limit changed useVSS to %v; want it left false", vss)
	}
	noise := make([]byte, 1<<20)
	rand.Read(noise)
	if err := os.WriteFile(filepath.Join(src, "fresh.bin"), noise, 0o644); err != nil {
		t.Fatal(err)
	}
	slow := exec.Command(coffer, "backup", "--json", "--config-dir", m.Dir)
	slow.Env = stack.AgentEnv(w.env, m.Dir)
	var slowOut bytes.Buffer
	slow.Stdout, slow.Stderr = &slowOut, &slowOut
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	slowDone := make(chan error, 1)
	go func() { slowDone <- slow.Wait() }()
	t.Cleanup(func() {
		if slow.ProcessState == nil {
			slow.Process.Kill()
			<-slowDone
		}
	})
	// The jobs page refreshes itself only while a job runs, so it is opened
	// once the agent has reported the job: on a busy machine, key derivation
	// and policy sync can take longer than the page takes to load.
	waitRunning := time.Now().Add(90 * time.Second)
	for {
		var jobs []wire.Job
		w.api("GET", "/api/v1/vaults/"+v.ID+"/jobs?machine="+m.ID+"&status="+wire.StatusInProgress, nil, &jobs)
		if len(jobs) > 0 {
			break
		}
		select {
		case err := <-slowDone:
			t.Fatalf("the throttled backup ended before it was seen running: %v\n%s", err, slowOut.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(waitRunning) {
			t.Fatalf("the throttled backup never reported a running job:\n%s", slowOut.String())
		}
	}
	c.route(vaultLinkJS(v.ID, "jobs?type=backup"), "Jobs of "+vaultName)
	running := `[...document.querySelectorAll('tr.job')].find(tr => tr.querySelector('td.status').textContent === 'in progress')`
	c.waitFor("the running backup shows progress", `(() => { const tr = `+running+`; if (!tr) return false;
		const p = tr.querySelector('progress'); return !!p && p.hasAttribute('value') && tr.children[7].textContent.endsWith('/s'); })()`)
	c.check("jobs-running")
	jobID := eval[string](c, "running job", `(`+running+`).dataset.job`)
	c.waitFor("the job completes on the page by itself", `(document.querySelector(`+q(`tr[data-job="`)+` + `+q(jobID)+` + '"] td.status') || {}).textContent === 'completed'`)
	if err := <-slowDone; err != nil {
		t.Fatalf("the throttled backup: %v\n%s", err, slowOut.String())
	}

	// Signing out ends the session: the API answers 401 to the browser.
	c.route("#/", "Overview")
	c.do("sign out", chromedp.Click("#sign-out"))
	c.waitForHeading("Sign in to Coffer")
	if code := eval[float64](c, "read after signing out", `fetch('/api/v1/vaults').then(r => r.status)`); code != http.StatusUnauthorized {
		t.Errorf("after signing out the API answered %v, want 401", code)
	}
}

// forgeFormPost submits an HTML form, as another site's page would, and
// checks the API refused it with 403.
func (b *browser) forgeFormPost(action string, fields map[string]string) {
	b.t.Helper()
	f, _ := json.Marshal(fields)
	eval[bool](b, "forge a form post", `(() => {
		const f = document.createElement('form');
		f.method = 'post';
		f.action = `+q(action)+`;
		for (const [k, v] of Object.entries(`+string(f)+`)) {
			const i = document.createElement('input');
			i.type = 'hidden'; i.name = k; i.value = v;
			f.append(i);
		}
		document.body.append(f);
		f.submit();
		return true;
	})()`)
	// The page navigates away while the condition is polled; polling
	// starts again in the new document until the answer is there.
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`location.pathname === `+q(action)+` && !!document.body && document.body.innerText.includes('"code"')`,
			chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
		if err == nil {
			break
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "navigated") && !strings.Contains(err.Error(), "context") && !strings.Contains(err.Error(), "destroyed") {
			b.t.Fatalf("waiting for the answer to the forged post to %s (%s): %v\n%s", action, b.who, err, b.pageText())
		}
	}
	body := eval[string](b, "the answer", `document.body.innerText`)
	var e wire.Error
	if err := json.Unmarshal([]byte(strings.TrimSpace(body)), &e); err != nil || e.Code != wire.CodeForbidden {
		b.t.Errorf("forged form post to %s (%s) was not refused as forbidden: %s", action, b.who, body)
	}
	b.do("back to the portal", chromedp.Navigate(b.base+"/portal/"))
	b.waitForHeading("Overview")
}

// postLink asks for a one-time sign-in link, as devstack does.
// emailLink waits for the email of an alert in the SMTP sink and returns
// the portal link it carries.
func emailLink(t *testing.T, alertID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for n := 1; ; n++ {
		msgs, err := st.SMTP.Wait(ctx, n)
		if err != nil {
			t.Fatalf("no email for alert %s: %v", alertID, err)
		}
		m := msgs[n-1]
		if m.Header == nil || m.Header.Get("X-Coffer-Alert") != alertID {
			continue
		}
		body, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.Body)))
		if err != nil || !strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = []byte(m.Body)
		}
		link := portalLink.FindString(string(body))
		if link == "" {
			t.Fatalf("the email of alert %s has no portal link:\n%s", alertID, body)
		}
		return link
	}
}

var portalLink = regexp.MustCompile(`https?://\S+/portal/#/\S+`)

func postLink(base, token string, out any) error {
	req, _ := http.NewRequest(http.MethodPost, base+"/portal/links", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return errors.New("sign-in link: " + res.Status)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

func vaultLinkJS(vault, page string) string { return "#/v/" + vault + "/" + page }

// commas writes n as the portal's toLocaleString('en') does.
func commas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// The accessibility check finds each kind of problem it looks for, so a
// page that passes it has none of them.
func TestAccessibilityCheckFindsProblems(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Chromium; skipped under -short (make unit), run by make test")
	}
	if chromium == "" {
		t.Skip("Chromium is not installed (make deps installs it: apt-get install -y chromium); the accessibility check's own test is skipped")
	}
	page := `<html><head><title>bad</title></head><body><h1>One</h1><h1>Two</h1><h4>Skipped</h4>` +
		`<img src="data:,"><input id="nameless"><button></button><a>no href</a><div tabindex="3">jump</div>` +
		`<table><tr><td>1</td></tr></table><span id="twice"></span><span id="twice"></span><progress value="1" max="2"></progress></body></html>`
	b := newBrowser(t, "", t.TempDir(), "checker")
	b.do("open the bad page", chromedp.Navigate("data:text/html,"+url.PathEscape(page)), chromedp.WaitVisible("#nameless"))
	problems := strings.Join(eval[[]string](b, "accessibility check", a11yCheck), "\n")
	for _, want := range []string{"no lang", "2 visible h1", "skip from h1 to h4", "image without alt", "form control without a label",
		"without an accessible name", "link without href", "positive tabindex", "table without header cells", "duplicate id twice", "progress without a label"} {
		if !strings.Contains(problems, want) {
			t.Errorf("the check did not report %q; it reported:\n%s", want, problems)
		}
	}
}

// The README's screenshots are written into docs/images only when asked,
// only for the Contributor's overview and machine pages, and the folder is
// the repository's own.
func TestReadmeScreenshotsGoToDocsImagesOnlyWhenAsked(t *testing.T) {
	t.Setenv(UpdateReadmeScreenshotsEnv, "")
	if _, ok, err := readmeScreenshot("contributor", "machine"); ok || err != nil {
		t.Fatalf("without %s: %v %v, want no update", UpdateReadmeScreenshotsEnv, ok, err)
	}
	t.Setenv(UpdateReadmeScreenshotsEnv, "1")
	for _, name := range readmeScreenshots {
		path, ok, err := readmeScreenshot("contributor", name)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", name, ok, err)
		}
		if filepath.Base(path) != "portal-"+name+".png" || filepath.Base(filepath.Dir(path)) != "images" {
			t.Errorf("%s goes to %s", name, path)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), "..", "..", "README.md")); err != nil {
			t.Errorf("%s is not in the repository's docs/images: %v", path, err)
		}
	}
	for who, name := range map[string]string{"reader": "machine", "contributor": "jobs"} {
		if _, ok, _ := readmeScreenshot(who, name); ok {
			t.Errorf("the %s's %s page would replace a README screenshot", who, name)
		}
	}
}
