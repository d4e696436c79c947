package adversary

// Attack: the owner of a machine rewrites its repository's settings, to
// turn its format or compression into something the other readers of the
// vault (a restore on a replacement machine) must take.

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/layout"
)

// Neither `coffer config set` (compression or format) nor an upload with
// the machine's own SAS replaces the repository's config: the SAS creates
// objects and never overwrites them, and the CLI says so before trying.
func TestAMachineCannotRewriteItsRepositorysConfig(t *testing.T) {
	m := fx.victim
	before := m.blobs(t, layout.Config)[layout.Config]
	if len(before) == 0 {
		t.Fatalf("the victim's repository has no %s", layout.Config)
	}
	for _, setting := range [][]string{{"compression", "fastest"}, {"format", "2"}} {
		_, err := m.coffer(t.Context(), append([]string{"config", "set"}, setting...)...)
		if err == nil || !strings.Contains(err.Error(), "vault") {
			t.Errorf("config set %s on a registered machine: %v; want a refusal naming the vault", setting[0], err)
		}
	}
	forged := bytes.Replace(before, []byte(`"version": 2`), []byte(`"version": 1`), 1)
	forged = bytes.Replace(forged, []byte(`"compression": "auto"`), []byte(`"compression": "fastest"`), 1)
	if bytes.Equal(forged, before) {
		t.Fatalf("no setting to forge in the config:\n%s", before)
	}
	if err := m.upload(t, layout.Config, forged); err == nil {
		t.Error("the machine's SAS overwrote its repository's config")
	}
	if after := m.blobs(t, layout.Config)[layout.Config]; !bytes.Equal(after, before) {
		t.Fatalf("the config changed:\n%s\nwas\n%s", after, before)
	}
}
