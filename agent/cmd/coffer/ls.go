package main

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/tree"
)

func newLs() *cobra.Command {
	var f repoFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "ls --repo REPO POINT [PATH]",
		Short: "List the files in a recovery point (POINT is an ID prefix or latest)",
		Args:  cli.RangeArgs(1, 2),
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
			if prefix != "" {
				// A path that is not in the point lists nothing; say so
				// (exit 1) rather than succeed with empty output.
				if _, err := restorer.Lookup(ctx, r, p.Tree, prefix); err != nil {
					return err
				}
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
