package main

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
)

type pointJSON struct {
	ID      string             `json:"id"`
	Time    time.Time          `json:"time"`
	Host    string             `json:"host"`
	Paths   []string           `json:"paths"`
	Tags    []string           `json:"tags,omitempty"`
	Parent  string             `json:"parent,omitempty"`
	Summary repository.Summary `json:"summary"`
}

func newPoints() *cobra.Command {
	var f repoFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "points --repo REPO",
		Short: "List the recovery points",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := f.open(c.Context())
			if err != nil {
				return err
			}
			points, loadErr := r.Points(c.Context())
			out := c.OutOrStdout()
			if asJSON {
				list := []pointJSON{}
				for _, p := range points {
					list = append(list, pointJSON{p.ID, p.Time, p.Hostname, p.Paths, p.Tags, p.Parent, p.Summary})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(list); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tHOST\tFILES\tSIZE\tPATHS")
				for _, p := range points {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.ID[:12], p.Time.Local().Format("2006-01-02 15:04:05"),
						p.Hostname, p.Summary.Files, humanBytes(p.Summary.Bytes), strings.Join(p.Paths, ", "))
				}
				tw.Flush()
			}
			if loadErr != nil {
				return fmt.Errorf("some points could not be read (run `coffer check`): %w", loadErr)
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newLs() *cobra.Command {
	var f repoFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "ls --repo REPO POINT [PATH]",
		Short: "List the files in a recovery point (POINT is an ID prefix or latest)",
		Args:  rangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			r, err := f.openIndexed(ctx)
			if err != nil {
				return err
			}
			p, err := findPoint(ctx, r, args[0])
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 2 {
				prefix = strings.Trim(strings.ReplaceAll(args[1], `\`, "/"), "/")
			}
			enc := json.NewEncoder(c.OutOrStdout())
			var walk func(id [32]byte, dir string) error
			walk = func(id [32]byte, dir string) error {
				t, err := r.LoadTree(ctx, id)
				if err != nil {
					return err
				}
				for _, n := range t.Nodes {
					p := path.Join(dir, string(n.Name))
					inside := prefix == "" || p == prefix || strings.HasPrefix(p, prefix+"/")
					if inside {
						if asJSON {
							enc.Encode(map[string]any{"path": "/" + p, "type": n.Type.String(), "size": n.Size, "mode": n.Mode, "mtime": time.Unix(0, n.ModTime)})
						} else {
							fmt.Fprintf(c.OutOrStdout(), "%-8s %12d  %s  /%s\n", n.Type, n.Size, time.Unix(0, n.ModTime).Local().Format("2006-01-02 15:04"), p)
						}
					}
					if n.Type == tree.Dir && (inside || strings.HasPrefix(prefix, p+"/")) {
						if err := walk(*n.Subtree, p); err != nil {
							return err
						}
					}
				}
				return nil
			}
			return walk(p.Tree, "")
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per line")
	return c
}
