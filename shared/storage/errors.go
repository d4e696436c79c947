package storage

import "errors"

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsExists reports whether err means Create found the name taken.
func IsExists(err error) bool { return errors.Is(err, ErrExists) }

// IsPermission reports whether err means the credentials do not allow the
// operation.
func IsPermission(err error) bool { return errors.Is(err, ErrPermission) }
