package archiver

import (
	"path/filepath"
	"runtime"
	"testing"
)

// joinPath's shortcut must give what filepath.Join gives for every folder
// the walk builds (clean, absolute) and any name.
func TestJoinPathAgreesWithFilepathJoin(t *testing.T) {
	dirs := []string{"/", "/srv", "/srv/share/docs"}
	if runtime.GOOS == "windows" {
		dirs = []string{`C:\`, `C:\Users`, `C:\Users\ana\Documents`}
	}
	names := []string{"a", "report 2026.docx", ".hidden", "..x", "x..", "", ".", "..", "a/b", "é"}
	if runtime.GOOS == "windows" {
		names = append(names, `a\b`)
	}
	for _, dir := range dirs {
		for _, name := range names {
			if got, want := joinPath(dir, name), filepath.Join(dir, name); got != want {
				t.Errorf("joinPath(%q, %q) = %q, want %q", dir, name, got, want)
			}
		}
	}
	if got := joinPath("", "D"); got != `D:\` {
		t.Errorf(`joinPath("", "D") = %q, want D:\`, got)
	}
}
