package main

import (
	"net"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/functions/config"
)

// Standalone without COFFER_PUBLIC_URL, the control plane listens on a
// free port and its own URL is the one agents use; anything else keeps
// the settings as given.
func TestStandaloneWithoutPublicURLUsesItsOwn(t *testing.T) {
	for _, tc := range []struct {
		name       string
		standalone bool
		env        map[string]string
		listens    bool
	}{
		{"standalone, no URL", true, map[string]string{}, true},
		{"standalone with a URL", true, map[string]string{config.PublicURL: "http://cp.example:8080"}, false},
		{"standalone in App Service", true, map[string]string{config.WebsiteHostname: "cp.azurewebsites.net"}, false},
		{"under the host", false, map[string]string{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, getenv, err := listenOwnURL(tc.standalone, "", func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if (ln != nil) != tc.listens {
				t.Fatalf("listening: %v, want %v", ln != nil, tc.listens)
			}
			if ln == nil {
				if getenv(config.PublicURL) != tc.env[config.PublicURL] {
					t.Fatalf("COFFER_PUBLIC_URL changed to %q", getenv(config.PublicURL))
				}
				return
			}
			defer ln.Close()
			url := getenv(config.PublicURL)
			if url != "http://"+ln.Addr().String() || !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, ":0") {
				t.Fatalf("COFFER_PUBLIC_URL = %q, listening on %s", url, ln.Addr())
			}
			// It is a real listener: something can connect.
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if _, err := config.Load(getenv); err != nil && strings.Contains(err.Error(), config.PublicURL) {
				t.Fatalf("the settings still miss the URL: %v", err)
			}
		})
	}
}
