// Package locate finds the emulator-tests folder and the Node.js tools
// installed in it, so launchers work from any working directory inside the
// repository (tests run in their package's folder, commands at the root).
package locate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// EnvDir overrides the search, for binaries run outside the repository.
const EnvDir = "COFFER_EMULATOR_DIR"

// Dir returns the emulator-tests folder: $COFFER_EMULATOR_DIR if set,
// otherwise the first emulator-tests folder found walking up from the
// working directory (the folder itself counts).
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find emulator-tests folder: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if filepath.Base(d) == "emulator-tests" && isFile(filepath.Join(d, "package.json")) {
			return d, nil
		}
		if c := filepath.Join(d, "emulator-tests"); isFile(filepath.Join(c, "package.json")) {
			return c, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no emulator-tests folder above %s: run from inside the Coffer repository or set %s", wd, EnvDir)
		}
	}
}

// Resolve returns dir made absolute, or Dir() when dir is empty: the rule
// every launcher's Options.Dir follows.
func Resolve(dir string) (string, error) {
	if dir == "" {
		return Dir()
	}
	return filepath.Abs(dir)
}

// NodeModule returns the path of a file inside an installed npm package,
// with a hint to install the packages when it is missing.
func NodeModule(dir string, rel ...string) (string, error) {
	p := filepath.Join(append([]string{dir, "node_modules"}, rel...)...)
	if !isFile(p) {
		return "", fmt.Errorf("%s is missing: install the emulators' npm packages with `make deps` (npm ci in %s)", p, dir)
	}
	return p, nil
}

// Node returns the node executable to use: the given path if not empty,
// else node from PATH.
func Node(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	p, err := exec.LookPath("node")
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", errors.New("node is not on PATH: install Node.js 20 or newer to run the local Azure stack")
		}
		return "", fmt.Errorf("find node: %w", err)
	}
	return p, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
