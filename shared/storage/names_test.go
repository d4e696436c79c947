package storage

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"config", "data/ab/abcdef", "a b/c+d%20é", ".hidden", "a/..b/c.."} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/abs", "a/", "a//b", ".", "..", "../x", "a/../b", "a/./b", `a\b`, "c:x", "a\x00b", "a\nb", "\xff", strings.Repeat("a", 1025)} {
		if err := CheckName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, ok := range []string{"", "data/", "data/a", "config"} {
		if err := CheckPrefix(ok); err != nil {
			t.Errorf("CheckPrefix(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"/", "../", "a//", `a\`} {
		if err := CheckPrefix(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CheckPrefix(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestIsHelpers(t *testing.T) {
	wrap := func(e error) error { return fmt.Errorf("op x: %w", e) }
	if !IsNotFound(wrap(ErrNotFound)) || !IsExists(wrap(ErrExists)) || !IsPermission(wrap(ErrPermission)) {
		t.Fatal("a wrapped sentinel was not recognised")
	}
	if IsNotFound(wrap(ErrExists)) || IsExists(nil) || IsPermission(errors.New("x")) {
		t.Fatal("a helper matched the wrong error")
	}
}
