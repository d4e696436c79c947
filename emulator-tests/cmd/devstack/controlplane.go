package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/proc"
	"github.com/coffer-backup/coffer/functions/config"
)

// roleTokens are the bearer tokens a local control plane accepts, one per
// role; an empty one is a role nobody can take.
type roleTokens struct {
	Contributor, Operator, Reader, SecurityAdmin string
}

// newRoleTokens makes a random token for every role.
func newRoleTokens() roleTokens {
	return roleTokens{Contributor: randomToken(), Operator: randomToken(), Reader: randomToken(), SecurityAdmin: randomToken()}
}

// env names every role's token, empty ones too, so a token exported in
// the caller's shell (after `source .dev/stack.env`) never leaks into a
// control plane that was meant not to have it.
func (t roleTokens) env() []string {
	return []string{
		config.TokenContributor + "=" + t.Contributor,
		config.TokenOperator + "=" + t.Operator,
		config.TokenReader + "=" + t.Reader,
		config.TokenSecurityAdmin + "=" + t.SecurityAdmin,
	}
}

// cpSpec says how to start one coffer-functions against a stack.
type cpSpec struct {
	Name       string   // for logs and messages: "coffer-functions"
	Bin        string   // folder holding coffer-functions
	StackEnv   []string // the stack's endpoints (stack.Environ)
	Tokens     roleTokens
	Standalone bool   // run the timers and the alerts queue in-process
	LogPath    string // its stdout and stderr; empty discards them
}

var listening = regexp.MustCompile(`coffer-functions listening on (http://\S+)`)

// startControlPlane starts coffer-functions on a free loopback port, chosen
// first so COFFER_PUBLIC_URL (which links and alert emails use) names it,
// with the stack's settings, the role tokens and the dev clock. Standalone
// it runs its timers and receives the alerts queue itself; otherwise it
// answers the invocations the Functions host posts. It returns the running
// process, its URL and its host:port.
func startControlPlane(ctx context.Context, s cpSpec) (*proc.Process, string, string, error) {
	var lastErr error
	for range 3 { // another process may take the port between the check and the start
		port, err := freePort()
		if err != nil {
			return nil, "", "", fmt.Errorf("find a free port: %w", err)
		}
		addr := "127.0.0.1:" + port
		want := "http://" + addr
		env := append(append(append([]string{}, s.StackEnv...), s.Tokens.env()...),
			config.PublicURL+"="+want,
			config.DevClock+"=1",
			config.AlertsQueue+"=alerts",
			config.AuthMode+"=tokens",
			config.Port+"=",
			config.WebsiteAuthEnabled+"=",
		)
		var got string
		p, err := proc.Start(ctx, proc.Spec{
			Name: s.Name, Path: exe(s.Bin, "coffer-functions"),
			Args:    []string{"--standalone=" + strconv.FormatBool(s.Standalone), "--addr", addr},
			Env:     env,
			LogPath: s.LogPath,
			Ready: func(line string) bool {
				if m := listening.FindStringSubmatch(line); m != nil {
					got = m[1]
					return true
				}
				return false
			},
		})
		if err != nil {
			where := "its log is discarded"
			if s.LogPath != "" {
				where = "log in " + s.LogPath
			}
			lastErr = fmt.Errorf("start %s (%s): %w", s.Name, where, err)
			if strings.Contains(err.Error(), "address already in use") {
				continue
			}
			return nil, "", "", lastErr
		}
		if got != want {
			return p, want, addr, fmt.Errorf("%s listens on %s, not on %s", s.Name, got, want)
		}
		return p, want, addr, nil
	}
	return nil, "", "", lastErr
}

// portalLink asks the control plane for a one-time sign-in link to the
// vault portal (POST /portal/links), with the role of token.
func portalLink(ctx context.Context, base, token string) (string, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/portal/links", nil)
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ask %s for a portal sign-in link: %w", base, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	var l struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if res.StatusCode != http.StatusCreated {
		return "", time.Time{}, fmt.Errorf("ask %s for a portal sign-in link: %s: %s", base, res.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &l); err != nil || l.URL == "" {
		return "", time.Time{}, fmt.Errorf("ask %s for a portal sign-in link: the answer holds no link (%v): %s", base, err, body)
	}
	return l.URL, l.ExpiresAt, nil
}

// controlPlaneLog is where `devstack serve` writes the control plane's log.
func controlPlaneLog(dir string) string { return filepath.Join(dir, "coffer-functions.log") }
