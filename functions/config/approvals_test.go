package config

import (
	"strings"
	"testing"
	"time"
)

// The Security Admin's token and the approval time limit.
func TestMultiUserAuthorizationSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  map[string]string
		ttl  time.Duration
		bad  string // a setting the error names, or "" for none
	}{
		{"defaults", nil, 24 * time.Hour, ""},
		{"a Security Admin token", map[string]string{TokenSecurityAdmin: "fedcba9876543210"}, 24 * time.Hour, ""},
		{"the Contributor's token", map[string]string{TokenSecurityAdmin: "0123456789abcdef"}, 0, TokenSecurityAdmin},
		{"a short token", map[string]string{TokenSecurityAdmin: "short"}, 0, TokenSecurityAdmin},
		{"an hour", map[string]string{ApprovalTTL: "1h"}, time.Hour, ""},
		{"a week", map[string]string{ApprovalTTL: "168h"}, 168 * time.Hour, ""},
		{"too short", map[string]string{ApprovalTTL: "1m"}, 0, ApprovalTTL},
		{"too long", map[string]string{ApprovalTTL: "400h"}, 0, ApprovalTTL},
		{"not a duration", map[string]string{ApprovalTTL: "a day"}, 0, ApprovalTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := emulatorSettings()
			for k, v := range tc.set {
				s[k] = v
			}
			c, err := Load(env(s))
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("%v, want an error naming %s", err, tc.bad)
				}
				return
			}
			if err != nil || c.ApprovalTTL != tc.ttl || c.Tokens.SecurityAdmin != s[TokenSecurityAdmin] {
				t.Fatalf("%+v %v", c, err)
			}
		})
	}
}
