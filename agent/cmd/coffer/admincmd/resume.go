package admincmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newResume(f *flags) *cobra.Command {
	return machineAction(f, "resume", "Resume protecting a stopped machine (Operator)", (*cpclient.Client).ResumeProtection,
		func(m wire.Machine, vault string) string {
			return fmt.Sprintf("%s is protected again; backups run on its policy's schedule.", m.Name)
		})
}
