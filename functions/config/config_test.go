package config

import (
	"strings"
	"testing"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func emulatorSettings() map[string]string {
	return map[string]string{
		StorageConnection:    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;",
		ServiceBusConnection: "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;",
		KeyVaultURL:          "https://127.0.0.1:8443/",
		PublicURL:            "http://127.0.0.1:7071",
		TokenContributor:     "0123456789abcdef",
	}
}

func TestLoadEmulatorSettings(t *testing.T) {
	c, err := Load(env(emulatorSettings()))
	if err != nil {
		t.Fatal(err)
	}
	if c.BlobEndpoint != "http://127.0.0.1:10000/devstoreaccount1" || c.StorageAccount != "devstoreaccount1" || c.AuthMode != "tokens" ||
		c.AlertsQueue != "alerts" || c.SMTP.Port != 587 || c.SMTP.Security != "starttls" || c.StaleJobAfter.Hours() != 2 {
		t.Fatalf("%+v", c)
	}
}

func TestLoadAzureSettings(t *testing.T) {
	c, err := Load(env(map[string]string{
		StorageBlobEndpoint:  "https://st.blob.core.windows.net",
		StorageTableEndpoint: "https://st.table.core.windows.net",
		ServiceBusNamespace:  "sb-x.servicebus.windows.net",
		KeyVaultURL:          "https://kv-x.vault.azure.net/",
		WebsiteHostname:      "func-x.azurewebsites.net",
		WebsiteAuthEnabled:   "True",
		ClientID:             "00000000-0000-0000-0000-000000000000",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthMode != "appservice" || c.PublicURL != "https://func-x.azurewebsites.net" || c.StorageConnection != "" {
		t.Fatalf("%+v", c)
	}
}

// Each broken setting is named in the error, all at once.
func TestLoadNamesEveryBrokenSetting(t *testing.T) {
	for _, tc := range []struct {
		change map[string]string
		names  []string
	}{
		{map[string]string{StorageConnection: ""}, []string{StorageConnection}},
		{map[string]string{StorageConnection: "", StorageBlobEndpoint: "http://plain", StorageTableEndpoint: "https://t"}, []string{StorageBlobEndpoint}},
		{map[string]string{StorageConnection: "AccountName=x"}, []string{StorageConnection}},
		{map[string]string{ServiceBusConnection: ""}, []string{ServiceBusConnection}},
		{map[string]string{KeyVaultURL: ""}, []string{KeyVaultURL}},
		{map[string]string{PublicURL: "::"}, []string{PublicURL}},
		{map[string]string{TokenContributor: ""}, []string{TokenContributor}},
		{map[string]string{TokenReader: "short"}, []string{TokenReader}},
		{map[string]string{AuthMode: "none"}, []string{AuthMode}},
		{map[string]string{SMTPPort: "seventy"}, []string{SMTPPort}},
		{map[string]string{StaleJobAfter: "1m"}, []string{StaleJobAfter}},
		{map[string]string{SoftDeleteDays: "7"}, []string{SoftDeleteDays}},
		{map[string]string{AuthMode: "appservice", DevClock: "1"}, []string{DevClock}},
		{map[string]string{KeyVaultURL: "", SMTPPort: "0"}, []string{KeyVaultURL, SMTPPort}},
	} {
		s := emulatorSettings()
		for k, v := range tc.change {
			s[k] = v
		}
		_, err := Load(env(s))
		if err == nil {
			t.Fatalf("%v accepted", tc.change)
		}
		for _, n := range tc.names {
			if !strings.Contains(err.Error(), n) {
				t.Errorf("%v: error %q does not name %s", tc.change, err, n)
			}
		}
	}
}

// The errors come in a fixed order, so the same settings give the same
// text on every start (and in every log line an operator compares).
func TestLoadReportsErrorsInAStableOrder(t *testing.T) {
	s := emulatorSettings()
	s[StorageConnection], s[StorageBlobEndpoint], s[StorageTableEndpoint] = "", "http://b", "http://t"
	s[TokenContributor], s[TokenOperator], s[TokenReader] = "c", "o", "r"
	s[KeyVaultURL] = ""
	_, first := Load(env(s))
	if first == nil {
		t.Fatal("broken settings accepted")
	}
	want := []string{StorageBlobEndpoint, StorageTableEndpoint, KeyVaultURL, TokenContributor, TokenOperator, TokenReader}
	lines := strings.Split(first.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(lines), len(want), first)
	}
	for i, n := range want {
		if !strings.HasPrefix(lines[i], "setting "+n+":") {
			t.Errorf("error %d is %q, want one about %s", i, lines[i], n)
		}
	}
	for range 50 {
		if _, err := Load(env(s)); err.Error() != first.Error() {
			t.Fatalf("the errors changed between two loads:\n%v\n---\n%v", first, err)
		}
	}
}

func TestParseStorageConnectionWithSuffix(t *testing.T) {
	c, err := ParseStorageConnection("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn")
	if err != nil || c.Blob != "https://acct.blob.core.chinacloudapi.cn" || c.Table != "https://acct.table.core.chinacloudapi.cn" {
		t.Fatalf("%+v %v", c, err)
	}
}
