package service

// New returns the launchd manager.
func New() Manager { return &Launchd{} }
