package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumNames are the browsers the demo looks for on PATH, as the
// portal's browser test does.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome"}

func findChromium() string {
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// portalPage is one page of the portal the demo photographs.
type portalPage struct {
	file     string // under the demo's folder
	fragment string // the page's route
	ready    string // JavaScript that is true once the page shows what the picture is for
}

// stepPortal shows the story so far in the vault portal: it signs a
// headless Chromium in with a one-time link, as a person would, and saves
// the overview and the machine page. Without Chromium it says so in one
// line and passes: the portal is extra to the story, not part of it.
func stepPortal(ctx context.Context, d *demo) (string, error) {
	portal := d.cpURL + "/portal/"
	chromium := findChromium()
	if chromium == "" {
		return fmt.Sprintf("The vault portal is at %s; Chromium is not installed (apt-get install chromium), so no screenshots are saved.", portal), nil
	}
	link, _, err := portalLink(ctx, d.cpURL, d.token)
	if err != nil {
		return "", err
	}
	machine := "#/v/" + d.vault.ID + "/machines/" + d.machineID
	pages := []portalPage{
		{"portal-overview.png", "#/", heading("Overview") + ` && !!document.querySelector('tr[data-machine="` + d.machineID + `"]')`},
		{"portal-machine.png", machine, heading("Machine "+demoMachine) +
			` && document.querySelectorAll('#points tbody tr').length === ` + fmt.Sprint(len(d.points)) +
			` && ['chart-duration', 'chart-throughput', 'chart-uploaded'].every(id => !!document.querySelector('#' + id + ' canvas'))`},
	}
	pid, err := screenshotPortal(ctx, chromium, link, d.Out, pages)
	if pid != 0 {
		d.ran("chromium", pid)
	}
	if err != nil {
		return "", err
	}
	var files []string
	for _, p := range pages {
		files = append(files, filepath.Join(d.Out, p.file))
	}
	return fmt.Sprintf("The vault portal at %s shows %s's backups, its failed job and the open alert.\n"+
		"Chromium signed in with a one-time link and saved the overview and the machine page: %s.", portal, demoMachine, strings.Join(files, " and ")), nil
}

// heading is JavaScript that is true when the page's heading starts with h.
func heading(h string) string {
	b, _ := json.Marshal(h)
	return `(() => { const h = document.querySelector('main h1'); return !!h && h.textContent.startsWith(` + string(b) + `); })()`
}

// screenshotPortal opens link (a one-time sign-in link) in a headless
// Chromium, then each page by its route, waits until the page is ready and
// saves it as a PNG in dir. It returns the browser's PID, so the demo can
// check it is gone; the browser is stopped before it returns.
func screenshotPortal(ctx context.Context, chromium, link, dir string, pages []portalPage) (pid int, err error) {
	profile, err := os.MkdirTemp("", "coffer-demo-chromium-")
	if err != nil {
		return 0, fmt.Errorf("make a profile folder for Chromium: %w", err)
	}
	defer func() { err = errors.Join(err, os.RemoveAll(profile)) }()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.Flag("headless", "new"), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1280, 900), chromedp.UserDataDir(profile))
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc() // stops the browser and waits for it
	bctx, cancel := chromedp.NewContext(alloc)
	defer cancel()

	if err := chromedp.Do(bctx, chromedp.Navigate(link)); err != nil {
		return 0, fmt.Errorf("start %s and open the portal: %w", chromium, err)
	}
	if c := chromedp.FromContext(bctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		pid = c.Browser.Process().Pid
	}
	// The page trades the link's code for a session cookie, then shows the
	// overview; only then may the demo move to another page.
	signedIn := heading("Overview") + ` && !location.href.includes('signin=')`
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](signedIn, chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		return pid, fmt.Errorf("sign in to the portal with a one-time link: %w", err)
	}
	for _, p := range pages {
		route, _ := json.Marshal(p.fragment)
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(location.hash = `+string(route)+`, true)`)); err != nil {
			return pid, fmt.Errorf("open the portal's page %s: %w", p.fragment, err)
		}
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](p.ready, chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			text, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
			return pid, fmt.Errorf("the portal's page %s did not show what it should (%v):\n%s", p.fragment, err, lastLines(text, 15))
		}
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			return pid, fmt.Errorf("screenshot of %s: %w", p.fragment, err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.file), png, 0o644); err != nil {
			return pid, fmt.Errorf("save the screenshot: %w", err)
		}
	}
	return pid, nil
}
