package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// valueName is what --help may show after a flag: one word such as PIN,
// DIR or NAME[:HEADER] (pflag's own "string", "int"...), or nothing for a
// boolean; a command has spaces.
var valueName = regexp.MustCompile(`^[A-Za-z][^\s` + "`" + `]*$`)

// TestFlagValueNames walks every command: pflag takes back-quoted text in
// a flag's usage as the name of its value, so a usage that quotes a
// command would print `--pin coffer admin pin VAULT`.
func TestFlagValueNames(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(f *pflag.Flag) {
			name, usage := pflag.UnquoteUsage(f)
			if name != "" && !valueName.MatchString(name) {
				t.Errorf("%s --%s: help shows the value as %q; back-quote only the value's name", c.CommandPath(), f.Name, name)
			}
			if strings.Contains(usage, "`") {
				t.Errorf("%s --%s: usage %q has a back quote left", c.CommandPath(), f.Name, usage)
			}
		}
		c.LocalFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
}
