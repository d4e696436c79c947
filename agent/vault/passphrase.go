package vault

import "crypto/rand"

// NewPassphrase makes a strong passphrase: 26 base32 characters, 130
// random bits, with no characters that look alike when typed from a
// printout.
func NewPassphrase() []byte { return []byte(rand.Text()) }
