package winlane

import (
	"slices"
	"strings"
	"testing"
)

// The lane itself runs with make test-windows; under go test only its
// judgement of test2json output is tested, which needs no wine.

func TestOnlyTheCleanupGapIsExcused(t *testing.T) {
	const cleanup = `        testing.go:1464: TempDir RemoveAll cleanup: unlinkat C:\\users\\root\\Temp\\TestA\\001\\f: Invalid function.\n`
	stream := strings.Join([]string{
		`{"Action":"run","Test":"TestA"}`,
		`{"Action":"output","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Test":"TestA","Output":"` + cleanup + `"}`,
		`{"Action":"output","Test":"TestA","Output":"--- FAIL: TestA (0.01s)\n"}`,
		`{"Action":"fail","Test":"TestA"}`,
		// A parent whose subtests only hit the gap is excused too.
		`{"Action":"output","Test":"TestB/one","Output":"` + cleanup + `"}`,
		`{"Action":"fail","Test":"TestB/one"}`,
		`{"Action":"fail","Test":"TestB"}`,
		// A real failure next to the gap is not.
		`{"Action":"output","Test":"TestC","Output":"    c_test.go:9: restore differs\n"}`,
		`{"Action":"output","Test":"TestC","Output":"` + cleanup + `"}`,
		`{"Action":"fail","Test":"TestC"}`,
		// Nor is a subtest's.
		`{"Action":"output","Test":"TestD/x","Output":"    d_test.go:3: wrong\n"}`,
		`{"Action":"fail","Test":"TestD/x"}`,
		`{"Action":"fail","Test":"TestD"}`,
		`{"Action":"pass","Test":"TestE"}`,
		`{"Action":"skip","Test":"TestF"}`,
		`{"Action":"fail"}`,
	}, "\n")
	var run PackageRun
	summarize(strings.NewReader(stream), &run)
	if !slices.Equal(run.Excused, []string{"TestA", "TestB"}) {
		t.Errorf("excused %v, want TestA and TestB", run.Excused)
	}
	var failed []string
	for _, f := range run.Failed {
		failed = append(failed, f.Name)
	}
	if !slices.Equal(failed, []string{"TestC", "TestD"}) {
		t.Errorf("failed %v, want TestC and TestD", failed)
	}
	if run.Passed != 3 || run.Skipped != 1 || run.Crash != "" {
		t.Errorf("passed %d, skipped %d, crash %q; want 3 (two excused), 1 and none", run.Passed, run.Skipped, run.Crash)
	}
	if out := strings.Join(run.Failed[1].Output, "\n"); !strings.Contains(out, "d_test.go:3: wrong") {
		t.Errorf("TestD's output does not carry its subtest's failure: %q", out)
	}
}

func TestABinaryFailingOutsideAnyTestIsACrash(t *testing.T) {
	stream := `{"Action":"output","Output":"panic: boom\n"}` + "\n" + `{"Action":"fail"}`
	var run PackageRun
	summarize(strings.NewReader(stream), &run)
	if run.OK() || !strings.Contains(run.Crash, "panic: boom") {
		t.Errorf("crash %q; want the panic", run.Crash)
	}
}

func TestWinPath(t *testing.T) {
	if got := WinPath("/work/a b/c"); got != `Z:\work\a b\c` {
		t.Errorf("WinPath = %s", got)
	}
}
