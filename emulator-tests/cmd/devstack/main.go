// Command devstack runs Coffer's local Azure stack (Azurite, the Service Bus
// and Key Vault emulators, an SMTP sink) for development and the demo.
//
//	devstack up      start the stack and a standalone control plane (its
//	                 vault portal) in the background (make dev-up)
//	devstack status  show whether it runs, its endpoints and a one-time
//	                 sign-in link to the portal
//	devstack env     print shell exports that point Coffer at it
//	devstack down    stop it and everything it started (make dev-down)
//	devstack demo    start a private stack, tell Coffer's whole story on it with
//	                 bin/coffer and bin/coffer-functions, stop it all (make demo)
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var stateDir string
	root := &cobra.Command{
		Use:           "devstack",
		Short:         "Run Coffer's local Azure stack: Azurite, Service Bus and Key Vault emulators, SMTP sink",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&stateDir, "dir", ".dev", "folder for the stack's state, logs and captured mail")
	// up and serve find coffer-functions in --bin, by default beside
	// devstack itself (bin/, after make build).
	var bin string
	withBin := func(c *cobra.Command) *cobra.Command {
		c.Flags().StringVar(&bin, "bin", "", "folder holding coffer-functions (default: devstack's own folder)")
		return c
	}
	root.AddCommand(
		withBin(&cobra.Command{Use: "up", Short: "Start the stack and a control plane on it in the background", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				bin, err := binDir(bin)
				if err != nil {
					return err
				}
				return up(c.Context(), c.OutOrStdout(), stateDir, bin)
			}}),
		&cobra.Command{Use: "down", Short: "Stop the stack and every process it started", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error { return down(c.OutOrStdout(), stateDir) }},
		&cobra.Command{Use: "status", Short: "Show whether the stack runs and its endpoints", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error { return status(c.OutOrStdout(), stateDir) }},
		&cobra.Command{Use: "env", Short: "Print shell exports that point Coffer at the running stack", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error { return printEnv(c.OutOrStdout(), stateDir) }},
		withBin(&cobra.Command{Use: "serve", Hidden: true, Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				bin, err := binDir(bin)
				if err != nil {
					return err
				}
				return serve(stateDir, bin)
			}}),
		newDemo(&stateDir),
	)
	return root
}
