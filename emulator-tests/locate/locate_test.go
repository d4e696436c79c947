package locate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirFromInsideTheRepository(t *testing.T) {
	t.Setenv(EnvDir, "")
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(d) != "emulator-tests" {
		t.Fatalf("Dir() = %s", d)
	}
	if _, err := os.Stat(filepath.Join(d, "package-lock.json")); err != nil {
		t.Fatalf("Dir() = %s has no package-lock.json", d)
	}
}

func TestDirFromTheEnvironment(t *testing.T) {
	want := t.TempDir()
	t.Setenv(EnvDir, want)
	if d, err := Dir(); err != nil || d != want {
		t.Fatalf("Dir() = %s, %v; want %s", d, err, want)
	}
}

func TestDirOutsideTheRepositoryExplainsWhatToDo(t *testing.T) {
	t.Setenv(EnvDir, "")
	t.Chdir(t.TempDir())
	_, err := Dir()
	if err == nil || !strings.Contains(err.Error(), EnvDir) {
		t.Fatalf("Dir() outside the repository: %v", err)
	}
}

func TestMissingNodeModuleSaysHowToInstall(t *testing.T) {
	_, err := NodeModule(t.TempDir(), "azurite", "dist", "src", "azurite.js")
	if err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("NodeModule for a missing package: %v", err)
	}
}

func TestResolvePrefersTheGivenFolder(t *testing.T) {
	t.Setenv(EnvDir, "")
	if d, err := Resolve("."); err != nil || !filepath.IsAbs(d) || filepath.Base(d) != "locate" {
		t.Fatalf("Resolve(.) = %s, %v", d, err)
	}
	if d, err := Resolve(""); err != nil || filepath.Base(d) != "emulator-tests" {
		t.Fatalf("Resolve(empty) = %s, %v", d, err)
	}
}
