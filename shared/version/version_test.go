package version

import "testing"

func TestLinkTimeVersionWins(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.9.9"
	if got := String(); got != "v9.9.9" {
		t.Fatalf("String() = %q, want the link-time version", got)
	}
	Version = ""
	if got := String(); got == "" {
		t.Fatal("String() is empty without a link-time version")
	}
}
