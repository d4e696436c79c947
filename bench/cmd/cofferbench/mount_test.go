//go:build unix

package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMountReportComparesWithResticsMount(t *testing.T) {
	s := func(x ...float64) []time.Duration {
		var ds []time.Duration
		for _, v := range x {
			ds = append(ds, time.Duration(v*float64(time.Second)))
		}
		return ds
	}
	m := &mountResult{fileSize: 256 << 20, files: 50_000, tools: []*mountTool{
		{name: "coffer", reads: s(1, 1.2, 0.9, 1.1, 0.8), lists: s(9, 10, 8)},
		{name: "restic", reads: s(3, 2.9, 3.2, 3.1, 2.8), lists: s(7, 7, 7)},
	}}
	var b bytes.Buffer
	m.markdown(&b)
	out := b.String()
	for _, want := range []string{
		"| Sequential read of the large file | 268 MB/s (1.00 s) | 89 MB/s (3.00 s) | 3.00× faster | ≥ 1.5× faster | yes |",
		"| `ls -lR` of the small files | 9.00 s | 7.00 s | 1.29× the time | no slower | **no** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if m.failed() {
		t.Error("a run without failures reported failure")
	}
	m.azurite = &mountTool{name: "coffer on Azurite", reads: s(2, 2.1, 1.9)}
	b.Reset()
	m.markdown(&b)
	if want := "| Sequential read, repository in Azurite (median of 3) | 134 MB/s (2.00 s) | not run | | ≥ 120 MB/s (20× MARS's 6 MB/s) | yes |"; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
	m.tools[1].err = errors.New("restic mount did not exit cleanly")
	m.tools[1].reads = m.tools[1].reads[:1]
	b.Reset()
	m.markdown(&b)
	if !m.failed() || !strings.Contains(b.String(), "| failed |") || !strings.Contains(b.String(), "restic mount failed: restic mount did not exit cleanly") {
		t.Errorf("a failed restic mount is not reported as such:\n%s", b.String())
	}
}
