package admincmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newUndelete(f *flags) *cobra.Command {
	return machineAction(f, "undelete", "Undelete a machine's soft-deleted data; it stays stopped (Contributor)", (*cpclient.Client).UndeleteMachine,
		func(m wire.Machine, vault string) string {
			return fmt.Sprintf("%s's data is back and protection is stopped; `coffer admin resume %s %s` starts backups again.",
				m.Name, quote(vault), quote(m.Name))
		})
}
