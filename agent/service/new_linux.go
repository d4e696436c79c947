package service

// New returns the systemd manager.
func New() Manager { return &Systemd{} }
