package portal

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"strings"
	"testing"
)

// The vendored libraries are the pinned releases, byte for byte
// (static/vendor/README.md says where each comes from), and the page loads
// them from the portal itself.
func TestVendoredLibrariesArePinned(t *testing.T) {
	want := map[string]string{
		"static/vendor/uplot-1.6.32/uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
		"static/vendor/uplot-1.6.32/uPlot.min.css":     "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
		"static/vendor/uplot-1.6.32/LICENSE":           "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
	}
	for name, sum := range want {
		b, err := fs.ReadFile(static, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s is not the pinned release (SHA-256 %x, want %s)", name, got, sum)
		}
	}
	index, _ := fs.ReadFile(static, "static/index.html")
	for _, ref := range []string{`src="vendor/uplot-1.6.32/uPlot.iife.min.js"`, `href="vendor/uplot-1.6.32/uPlot.min.css"`} {
		if !strings.Contains(string(index), ref) {
			t.Errorf("index.html does not load %s", ref)
		}
	}
}
