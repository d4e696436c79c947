package wire

import (
	"fmt"
	"regexp"
)

// idShape is the form of vault and machine IDs (20 lower-case hex digits).
var idShape = regexp.MustCompile(`^[0-9a-f]{20}$`)

// CheckVaultName says what is wrong with a new vault's name, or nil. Names
// are typed on command lines and shown in mail subjects and URLs, so they
// keep to letters, digits, '-', '_' and '.', start with a letter or digit,
// and never look like an ID: `coffer admin` takes 20 hex digits as one.
// The control plane checks it on create; the CLI checks it first, so a
// typo is a usage error. Vaults named before this rule keep their names.
func CheckVaultName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("vault name must be 1 to 64 characters, not %d", len(name))
	}
	for i, c := range name {
		letterOrDigit := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !letterOrDigit {
			return fmt.Errorf("vault name %q must start with a letter or a digit", name)
		}
		if !letterOrDigit && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("vault name %q may contain only letters, digits, '-', '_' and '.' (like branch-offices)", name)
		}
	}
	if idShape.MatchString(name) {
		return fmt.Errorf("vault name %q looks like a vault ID (20 hex digits), which commands would take as an ID; choose another", name)
	}
	return nil
}
