package wire

import (
	"strings"
	"testing"
)

func TestCheckVaultName(t *testing.T) {
	for _, tc := range []struct {
		name, wantErr string // wantErr: part of the message, "" for valid
	}{
		{"branch-offices", ""},
		{"x", ""},
		{"Lab_2.eu", ""},
		{"0ffice", ""},
		{strings.Repeat("a", 64), ""},
		{"", "1 to 64"},
		{strings.Repeat("a", 65), "1 to 64"},
		{"-branch", "start with a letter or a digit"},
		{".hidden", "start with a letter or a digit"},
		{"branch offices", "only letters, digits"},
		{"a/b", "only letters, digits"},
		{"tab\there", "only letters, digits"},
		{"café", "only letters, digits"},
		{"0123456789abcdef0123", "looks like a vault ID"},
		{"0123456789ABCDEF0123", ""}, // IDs are lower case
	} {
		err := CheckVaultName(tc.name)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("CheckVaultName(%q) = %v, want nil", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("CheckVaultName(%q) = %v, want an error saying %q", tc.name, err, tc.wantErr)
		}
	}
}
