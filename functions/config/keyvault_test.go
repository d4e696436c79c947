package config

import (
	"strings"
	"testing"
)

// The registration delegate's settings: both or neither, a resource ID,
// and a local Resource Manager only with its endpoint.
func TestKeyVaultDelegateSettings(t *testing.T) {
	const vaultID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-x"
	with := func(extra map[string]string) map[string]string {
		s := emulatorSettings()
		for k, v := range extra {
			s[k] = v
		}
		return s
	}
	c, err := Load(env(with(map[string]string{KeyVaultResourceID: vaultID, KeyVaultMachineRole: "c0ffe500-7a55-4f2a-8000-000000000001",
		ARMEndpoint: "https://127.0.0.1:8443", ARMToken: "delegate-token", "SSL_CERT_FILE": "/tmp/ca.pem"})))
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyVaultResourceID != vaultID || c.ARM.Endpoint != "https://127.0.0.1:8443" || c.ARM.Token != "delegate-token" || c.ARM.CAFile != "/tmp/ca.pem" {
		t.Fatalf("%+v", c)
	}
	if c, err := Load(env(emulatorSettings())); err != nil || c.KeyVaultResourceID != "" || c.ARM.CAFile != "" {
		t.Fatalf("without the settings: %+v %v", c, err)
	}
	for _, tc := range []struct {
		name  string
		extra map[string]string
		want  string
	}{
		{"resource ID alone", map[string]string{KeyVaultResourceID: vaultID}, "go together"},
		{"role alone", map[string]string{KeyVaultMachineRole: "c0ffe500-7a55-4f2a-8000-000000000001"}, "go together"},
		{"not a resource ID", map[string]string{KeyVaultResourceID: "kv-x", KeyVaultMachineRole: "c0ffe500-7a55-4f2a-8000-000000000001"}, "resource ID"},
		{"plain HTTP", map[string]string{ARMEndpoint: "http://127.0.0.1:1"}, "https://"},
		{"token without endpoint", map[string]string{ARMToken: "t"}, ARMEndpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(with(tc.extra)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
