package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

// terminal is where a passphrase is asked for when neither its file nor its
// environment variable is given: standard input, when it is a terminal.
// Prompts go to standard error so standard output stays the command's.
var terminal = struct {
	fd     int
	prompt io.Writer
}{int(os.Stdin.Fd()), os.Stderr}

// askPassphrase reads a passphrase from the terminal without echo; with
// confirm it asks twice and fails when the two differ, as a new passphrase
// mistyped once would lock the repository for good.
func askPassphrase(label string, confirm bool) ([]byte, error) {
	read := func(prompt string) ([]byte, error) {
		fmt.Fprint(terminal.prompt, prompt)
		p, err := term.ReadPassword(terminal.fd)
		fmt.Fprintln(terminal.prompt) // the Enter key was not echoed either
		if err != nil {
			return nil, fmt.Errorf("read the passphrase from the terminal: %w", err)
		}
		return p, nil
	}
	p, err := read(label + ": ")
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, cli.Usagef("empty passphrase: type one, or set COFFER_PASSPHRASE or give --passphrase-file")
	}
	if confirm {
		again, err := read("Repeat " + firstLower(label) + ": ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, again) {
			return nil, errors.New("the passphrases typed differ; nothing was changed: run the command again")
		}
	}
	return p, nil
}

func firstLower(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}

// canAsk reports whether a passphrase can be asked for.
func canAsk() bool { return term.IsTerminal(terminal.fd) }
