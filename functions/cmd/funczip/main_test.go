package main

import (
	"archive/zip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stage writes a staged folder as a Windows checkout gives it: every file
// 0644, the binary included.
func stage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"host.json":                    `{"version":"2.0"}`,
		"coffer-functions":             "\x7fELF binary",
		"api/function.json":            `{"bindings":[]}`,
		"SendAlertEmail/function.json": `{"bindings":[]}`,
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestZipHasUnixModesWhateverTheDisk(t *testing.T) {
	dir := stage(t)
	out := filepath.Join(t.TempDir(), "functions.zip")
	if err := Write(dir, out, []string{"coffer-functions"}); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	got := map[string]os.FileMode{}
	for _, f := range zr.File {
		got[f.Name] = f.Mode()
		if f.CreatorVersion>>8 != 3 {
			t.Errorf("%s: creator host %d, want 3 (Unix)", f.Name, f.CreatorVersion>>8)
		}
		if f.Name == "coffer-functions" {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			if string(b) != "\x7fELF binary" {
				t.Errorf("binary content %q", b)
			}
		}
	}
	want := map[string]os.FileMode{"coffer-functions": 0o755, "host.json": 0o644, "api/function.json": 0o644, "SendAlertEmail/function.json": 0o644}
	if len(got) != len(want) {
		t.Fatalf("zip holds %v, want %v", got, want)
	}
	for name, mode := range want {
		if got[name] != mode {
			t.Errorf("%s: mode %v, want %v", name, got[name], mode)
		}
	}
	if err := Check(out, []string{"host.json", "api/function.json"}, []string{"coffer-functions"}); err != nil {
		t.Fatal(err)
	}
}

// The check refuses what azd would make of the same folder on Windows: a
// binary without its executable bit.
func TestCheckRefusesABinaryWithoutItsExecutableBit(t *testing.T) {
	out := filepath.Join(t.TempDir(), "functions.zip")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, name := range []string{"host.json", "coffer-functions"} {
		h := &zip.FileHeader{Name: name}
		h.SetMode(0o644)
		w, _ := zw.CreateHeader(h)
		io.WriteString(w, "x")
	}
	zw.Close()
	f.Close()
	err = Check(out, []string{"host.json", "api/function.json"}, []string{"coffer-functions"})
	if err == nil || !strings.Contains(err.Error(), "coffer-functions has mode -rw-r--r--") || !strings.Contains(err.Error(), "api/function.json is missing") {
		t.Fatalf("Check = %v", err)
	}
}

func TestWriteNeedsTheBinaryAndAZipOutsideTheFolder(t *testing.T) {
	dir := stage(t)
	if err := Write(dir, filepath.Join(t.TempDir(), "x.zip"), []string{"missing-binary"}); err == nil {
		t.Fatal("zipped a folder without its executable")
	}
	if err := Write(dir, filepath.Join(dir, "x.zip"), []string{"coffer-functions"}); err == nil {
		t.Fatal("wrote the zip inside the folder it zips")
	}
}
