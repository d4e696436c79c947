package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/coffer-backup/coffer/emulator-tests/proc"
	"github.com/coffer-backup/coffer/functions/config"
)

// RoleTokens are the bearer tokens a local control plane accepts, one per
// role; an empty one is a role nobody can take.
type RoleTokens struct {
	Contributor, Operator, Reader, SecurityAdmin string
}

// NewRoleTokens makes a random token for every role.
func NewRoleTokens() RoleTokens {
	return RoleTokens{Contributor: RandomToken(), Operator: RandomToken(), Reader: RandomToken(), SecurityAdmin: RandomToken()}
}

// RandomToken is a fresh random bearer token.
func RandomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Environ names every role's token, empty ones too, so a token exported
// in the caller's shell (after `source .dev/stack.env`) never leaks into a
// control plane that was meant not to have it.
func (t RoleTokens) Environ() []string {
	return []string{
		config.TokenContributor + "=" + t.Contributor,
		config.TokenOperator + "=" + t.Operator,
		config.TokenReader + "=" + t.Reader,
		config.TokenSecurityAdmin + "=" + t.SecurityAdmin,
	}
}

// ControlPlane says how to start one coffer-functions against a stack.
type ControlPlane struct {
	Name       string   // for logs and messages: "coffer-functions"
	Path       string   // the coffer-functions executable
	StackEnv   []string // the stack's endpoints (Stack.Environ)
	Tokens     RoleTokens
	Standalone bool   // run the timers and the alerts queue in-process
	LogPath    string // its stdout and stderr; empty discards them
}

var listening = regexp.MustCompile(`coffer-functions listening on (http://\S+)`)

// StartControlPlane starts coffer-functions on a free loopback port, chosen
// first so COFFER_PUBLIC_URL (which links and alert emails use) names it,
// with the stack's settings, the role tokens and the dev clock. Standalone
// it runs its timers and receives the alerts queue itself; otherwise it
// answers the invocations the Functions host posts. It returns the running
// process, its URL and its host:port.
func StartControlPlane(ctx context.Context, s ControlPlane) (*proc.Process, string, string, error) {
	var lastErr error
	for range 3 { // another process may take the port between the check and the start
		port, err := FreePort()
		if err != nil {
			return nil, "", "", fmt.Errorf("find a free port: %w", err)
		}
		addr := "127.0.0.1:" + port
		want := "http://" + addr
		env := append(append(append([]string{}, s.StackEnv...), s.Tokens.Environ()...),
			config.PublicURL+"="+want,
			config.DevClock+"=1",
			config.AlertsQueue+"=alerts",
			config.AuthMode+"=tokens",
			config.Port+"=",
			config.WebsiteAuthEnabled+"=",
		)
		var got string
		p, err := proc.Start(ctx, proc.Spec{
			Name: s.Name, Path: s.Path,
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

// FreePort asks the OS for a loopback port nobody uses now.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}
