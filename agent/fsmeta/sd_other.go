//go:build !windows

package fsmeta

// ReadSecurityDescriptor returns nil, nil: security descriptors exist only
// on Windows; unix permissions travel in Meta and xattrs instead.
func ReadSecurityDescriptor(path string) ([]byte, error) { return nil, nil }

// WriteSecurityDescriptor does nothing outside Windows, so a restore of a
// Windows backup onto unix simply drops the ACLs.
func WriteSecurityDescriptor(path string, sd []byte) error { return nil }
