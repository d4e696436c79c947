package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/tree"
)

func newDump() *cobra.Command {
	var f repoFlags
	c := &cobra.Command{
		Use:   "dump [--repo REPO] POINT PATH",
		Short: "Write a file of a point to standard output, or a folder as a tar stream",
		Long: `Write the file at PATH in POINT (an ID prefix or latest) to standard output,
or, for a folder, a tar stream of it and everything below it ("/" for the whole
point). Tar names are paths from the point's root, as ` + "`coffer restore`" + ` lays
them out, with modes, owners, times, symlinks, hard links and extended
attributes.

  coffer dump latest /home/ann/report.docx > report.docx
  coffer dump latest /home/ann/docs | tar -x -C /tmp/restore`,
		Args: cli.RangeArgs(2, 2),
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
			tc, err := f.cache(r)
			if err != nil {
				return err
			}
			defer tc.Close()
			tc.UseBundle(p.Tree, false)
			n, err := restorer.Lookup(ctx, tc, p.Tree, args[1])
			if err != nil {
				return err // a path not in the point is a failure (1), like a missing point
			}
			out := c.OutOrStdout()
			if n.Type == tree.Dir {
				if fd, ok := out.(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
					return cli.Usagef("%s is a folder: its tar stream would go to the terminal; redirect it (> file.tar) or pipe it (| tar -x)", args[1])
				}
			}
			w := bufio.NewWriterSize(out, 1<<20)
			switch n.Type {
			case tree.File:
				err = restorer.WriteContent(ctx, r, n.Content, w)
			case tree.HardLink:
				first, lerr := restorer.Lookup(ctx, tc, p.Tree, string(n.LinkTarget))
				if lerr != nil {
					return fmt.Errorf("%s is a hard link: %w", args[1], lerr)
				}
				err = restorer.WriteContent(ctx, r, first.Content, w)
			case tree.Dir:
				err = restorer.WriteTar(ctx, r, tc, p.Tree, args[1], n, w)
			case tree.Symlink:
				return cli.Usagef("%s is a symlink to %q; dump what it points to", args[1], n.LinkTarget)
			default:
				return cli.Usagef("%s is a %s, which holds no data to dump", args[1], n.Type)
			}
			if err != nil {
				return err
			}
			return w.Flush()
		},
	}
	f.add(c)
	return c
}
