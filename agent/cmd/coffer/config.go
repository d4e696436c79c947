package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/storage"
)

// compressionHelp says what each mode costs, for --compression and
// `config set`: figures from docs/benchmarks.md ("Compression modes").
const compressionHelp = "auto (the default: zstd's default level, as restic's auto, skipping data that does not compress), " +
	"fastest (0.55-0.75x the CPU, 0.6-5% larger), default, or max (zstd's best level: 0.3-3% smaller, 8-13x the CPU)"

// modeFlag is --compression. Checked as it is parsed, a bad value is a
// usage error (exit 2) that lists the valid ones.
type modeFlag struct{ m *compress.Mode }

func (f modeFlag) String() string { return f.m.String() }
func (f modeFlag) Type() string   { return "MODE" }
func (f modeFlag) Set(s string) error {
	m, err := compress.ParseMode(s)
	if err != nil {
		return err
	}
	*f.m = m
	return nil
}

// settings are the config settings `coffer config set` changes; the others
// are fixed at init.
var settings = []string{"compression", "format"}

func newConfig() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Show the repository's settings, or change how new data is compressed"}
	c.AddCommand(newConfigShow(), newConfigSet())
	return c
}

func newConfigShow() *cobra.Command {
	var f repoFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "show --repo REPO",
		Short: "Show the repository's settings: ID, chunking, pack size and compression",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := f.open(c.Context())
			if err != nil {
				return err
			}
			cfg := r.Config()
			if asJSON {
				return writeJSON(c.OutOrStdout(), configJSON(cfg))
			}
			printConfig(c.OutOrStdout(), cfg, r.Backend().Location())
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// configJSON is the config as `config show --json` prints it: camelCase
// like all of coffer's JSON, where the stored object's chunker is not.
func configJSON(cfg repository.Config) any {
	type chunkerJSON struct {
		Min int `json:"min"`
		Avg int `json:"avg"`
		Max int `json:"max"`
	}
	return struct {
		Version     int         `json:"version"`
		ID          string      `json:"id"`
		Created     time.Time   `json:"created"`
		Chunker     chunkerJSON `json:"chunker"`
		PackSize    int         `json:"packSize"`
		Compression string      `json:"compression"`
	}{cfg.Version, cfg.ID, cfg.Created, chunkerJSON{cfg.Chunker.Min, cfg.Chunker.Avg, cfg.Chunker.Max}, cfg.PackSize, cfg.Compression.String()}
}

func printConfig(out io.Writer, cfg repository.Config, location string) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Repository\t%s\n", cfg.ID)
	fmt.Fprintf(tw, "Location\t%s\n", location)
	fmt.Fprintf(tw, "Created\t%s\n", cfg.Created.Local().Format(time.DateTime))
	fmt.Fprintf(tw, "Format version\t%d\n", cfg.Version)
	fmt.Fprintf(tw, "Chunks\tmin %s, average %s, max %s\n", cli.HumanBytes(int64(cfg.Chunker.Min)), cli.HumanBytes(int64(cfg.Chunker.Avg)), cli.HumanBytes(int64(cfg.Chunker.Max)))
	fmt.Fprintf(tw, "Pack size\t%s\n", cli.HumanBytes(int64(cfg.PackSize)))
	fmt.Fprintf(tw, "Compression\t%s (of new data; `coffer config set compression MODE` changes it)\n", cfg.Compression)
	tw.Flush()
}

func newConfigSet() *cobra.Command {
	var f repoFlags
	c := &cobra.Command{
		Use:   "set --repo REPO compression auto|fastest|default|max | format 2",
		Short: "Change how new data is compressed, or upgrade the format; data already stored stays as it is",
		Long: `Change the repository's compression mode for the data backups store from now
on. Data already stored keeps its compression and stays readable: every blob
records how it was compressed. Backups already running keep the mode they
started with.

Modes: ` + compressionHelp + `.

` + "`config set format 2`" + ` upgrades a repository made before format version 2: its
backups then compress small files together in groups (smaller repositories),
and Coffer releases before version 2 can no longer open it.

Needs credentials that may overwrite the repository's config object: a local
folder, or a container SAS with write permission.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return cli.Usagef("config set takes a setting and its value, such as `config set compression max` (see `%s --help`)", c.CommandPath())
			}
			if !slices.Contains(settings, args[0]) {
				return cli.Usagef("unknown setting %q: those that change after init are %s", args[0], strings.Join(settings, ", "))
			}
			if args[0] == "format" {
				if args[1] != strconv.Itoa(repository.FormatVersion) {
					return cli.Usagef("format %q: the only upgrade is to format %d", args[1], repository.FormatVersion)
				}
				return nil
			}
			if _, err := compress.ParseMode(args[1]); err != nil {
				return cli.UsageError{Err: err}
			}
			return nil
		},
		ValidArgsFunction: func(_ *cobra.Command, given []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			switch len(given) {
			case 0:
				return settings, cobra.ShellCompDirectiveNoFileComp
			case 1:
				if given[0] == "format" {
					return []cobra.Completion{strconv.Itoa(repository.FormatVersion)}, cobra.ShellCompDirectiveNoFileComp
				}
				return compress.ModeNames(), cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			m, _ := compress.ParseMode(args[1])
			if vm, err := f.vaultMode(); err != nil {
				return err
			} else if vm {
				// The machine's SAS may create but never overwrite, so a
				// compromised machine cannot rewrite its repository.
				return cli.Usagef("a vault's repository keeps the settings it was created with: this machine's storage access can create objects but not replace the config; give --repo to change a standalone repository")
			}
			r, err := f.open(c.Context())
			if err != nil {
				return err
			}
			if args[0] == "format" {
				was := r.Config().Version
				if was >= repository.FormatVersion {
					fmt.Fprintf(c.OutOrStdout(), "The repository is format version %d already.\n", was)
					return nil
				}
				if err := r.UpgradeFormat(c.Context()); err != nil {
					if errors.Is(err, storage.ErrPermission) {
						return fmt.Errorf("%w; upgrading overwrites the repository's config, which needs a local folder or a SAS with write permission", err)
					}
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "Format version %d (was %d): backups from now on group small files. Coffer releases before format %d can no longer open this repository.\n", r.Config().Version, was, repository.FormatVersion)
				return nil
			}
			was := r.Config().Compression
			if err := r.SetCompression(c.Context(), m); err != nil {
				if errors.Is(err, storage.ErrPermission) {
					return fmt.Errorf("%w; changing the compression overwrites the repository's config, which needs a local folder or a SAS with write permission", err)
				}
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "Compression of new data: %s (was %s). Data already stored is unchanged.\n", m, was)
			return nil
		},
	}
	f.add(c)
	return c
}
