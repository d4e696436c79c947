package keyvault

import "strings"

// SupportedAPIVersions are the Key Vault data-plane versions the emulator
// answers, oldest first: every version the secrets API has had that the
// secrets routes here serve the same way. azsecrets v1.5.1 sends 2026-04-01
// and @azure/keyvault-secrets 4.11.0 sends 2025-07-01.
var SupportedAPIVersions = []string{
	"2015-06-01", "2016-10-01",
	"7.0", "7.1", "7.2", "7.3", "7.4", "7.5",
	"7.6-preview.1", "7.6-preview.2", "7.6",
	"2025-07-01", "2026-04-01",
}

// LatestAPIVersion is the newest of SupportedAPIVersions, which Key Vault
// names when it refuses a version.
var LatestAPIVersion = SupportedAPIVersions[len(SupportedAPIVersions)-1]

// checkAPIVersion refuses a missing or unknown api-version as Key Vault
// does: 400 BadParameter, naming the latest version it supports
// ("The specified version (7.9) is not recognized. Consider using the
// latest supported version (2026-04-01).").
func checkAPIVersion(v string) *response {
	if v == "" {
		r := badParameter("The 'api-version' query parameter is missing. Consider using the latest supported version (" + LatestAPIVersion + ").")
		return &r
	}
	for _, s := range SupportedAPIVersions {
		if v == s {
			return nil
		}
	}
	r := badParameter("The specified version (" + strings.TrimSpace(v) + ") is not recognized. Consider using the latest supported version (" + LatestAPIVersion + ").")
	return &r
}
