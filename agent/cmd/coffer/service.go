package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/logging"
	"github.com/coffer-backup/coffer/agent/service"
	"github.com/coffer-backup/coffer/agent/vault"
)

func newService() *cobra.Command {
	var name, dir, logDir string
	var asJSON bool
	svc := &cobra.Command{
		Use:   "service",
		Short: "Install, remove or inspect `coffer run` as a system service",
		Long: `Run the agent as a system service: a systemd unit on Linux, a Windows
service on Windows, a launchd daemon on macOS. Needs root or Administrator.`,
	}
	svc.PersistentFlags().StringVar(&name, "name", service.DefaultName, "service name")
	install := &cobra.Command{
		Use:   "install",
		Short: "Install and start the agent as a service",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the coffer executable: %w", err)
			}
			if exe, err = filepath.EvalSymlinks(exe); err != nil {
				return err
			}
			if dir == "" {
				if dir, err = vault.DefaultDir(); err != nil {
					return err
				}
			}
			if _, _, err := vault.Load(dir); err != nil {
				return err // register first: a service without a vault would only fail
			}
			if logDir == "" {
				logDir = logging.DefaultDir()
			}
			cfg := service.Config{Name: name, Executable: exe, Args: []string{"run"}, ConfigDir: dir, LogDir: logDir}
			if err := service.New().Install(c.Context(), cfg); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "Installed and started service %s (config %s, logs %s).\n", name, dir, logDir)
			return nil
		},
	}
	addConfigDir(install, &dir)
	install.Flags().StringVar(&logDir, "log-dir", "", "where the agent writes its rotating log (default: the OS's)")
	uninstall := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop and remove the service (the registration is kept)",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := service.New().Uninstall(c.Context(), name); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "Removed service %s. The registration is kept; `coffer service install` brings it back.\n", name)
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Say whether the service is installed and running",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := service.New().Status(c.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), st)
			}
			fmt.Fprintf(c.OutOrStdout(), "Service %s: installed %v, running %v. %s\n", name, st.Installed, st.Running, st.Detail)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	svc.AddCommand(install, uninstall, status)
	return svc
}
