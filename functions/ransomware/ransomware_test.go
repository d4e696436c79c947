package ransomware

import (
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/wire"
)

func TestJudge(t *testing.T) {
	normal := wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 10, NewExtension: 1, TopNewExtension: 1, Deleted: 2}
	churn := wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 400, Incompressible: 100, Deleted: 300}
	for _, tc := range []struct {
		name     string
		c        wire.ChangeCounters
		baseline []wire.ChangeCounters
		want     []string // the marks that fire, by a word of their reason
	}{
		{"first backup", wire.ChangeCounters{Files: 1000}, nil, nil},
		{"too few files to judge", wire.ChangeCounters{ParentFiles: 4, Files: 4, Changed: 4, Incompressible: 4}, nil, nil},
		{"a normal day", normal, nil, nil},
		{"a normal day against its history", normal, []wire.ChangeCounters{normal, normal}, nil},
		{"a fifth encrypted in place", wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 200, Incompressible: 190},
			[]wire.ChangeCounters{normal}, []string{"compressing", "rewritten"}},
		{"a fifth encrypted and renamed", wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Renamed: 200, Incompressible: 190,
			NewExtension: 200, TopNewExtension: 200, Deleted: 200}, []wire.ChangeCounters{normal}, []string{"compressing", "rewritten", "extension"}},
		{"a small tree encrypted", wire.ChangeCounters{ParentFiles: 8, Files: 8, Changed: 2, Incompressible: 2}, nil, []string{"compressing"}},
		{"one file of a small tree became a zip", wire.ChangeCounters{ParentFiles: 8, Files: 8, Changed: 1, Incompressible: 1}, nil, nil},
		{"media files encrypted", wire.ChangeCounters{ParentFiles: 8, Files: 8, Changed: 2, Overwritten: 2}, nil, []string{"whole"}},
		{"one large file re-encoded", wire.ChangeCounters{ParentFiles: 8, Files: 8, Changed: 1, Overwritten: 1}, nil, nil},
		{"half deleted", wire.ChangeCounters{ParentFiles: 1000, Files: 500, Deleted: 500}, nil, []string{"deleted"}},
		{"a machine that churns, churning as usual", churn, []wire.ChangeCounters{churn}, nil},
		{"a machine that churns, encrypted", wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 900, Incompressible: 800},
			[]wire.ChangeCounters{churn}, []string{"compressing", "rewritten"}},
		{"history without a parent is no baseline", wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 200, Incompressible: 190},
			[]wire.ChangeCounters{{Files: 1000, Changed: 1000, Incompressible: 1000}}, []string{"compressing", "rewritten"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(tc.c, tc.baseline, Default)
			if v.Suspicious != (len(tc.want) > 0) || len(v.Reasons) != len(tc.want) {
				t.Fatalf("verdict %+v, want the marks %q", v, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(v.Reasons[i], w) {
					t.Errorf("reason %d is %q, want it about %q", i, v.Reasons[i], w)
				}
			}
		})
	}
}

func TestBaselineLearnsFromAFalsePositive(t *testing.T) {
	// A nightly job recompresses a quarter of the files: the first time it
	// fires; once an admin says it was a false positive, its counters join
	// the baseline and the same change passes, while twice as much still
	// fires.
	recompress := wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 250, Incompressible: 250}
	if v := Judge(recompress, nil, Default); !v.Suspicious {
		t.Fatal("the first recompression did not fire")
	}
	learned := []wire.ChangeCounters{recompress}
	if v := Judge(recompress, learned, Default); v.Suspicious {
		t.Fatalf("fired again after the false positive was acknowledged: %s", v.Reason())
	}
	double := wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 500, Incompressible: 500}
	if v := Judge(double, learned, Default); !v.Suspicious {
		t.Fatal("twice the acknowledged change did not fire")
	}
	// Only the last History backups count: the lesson fades.
	old := append(make([]wire.ChangeCounters, Default.History), recompress)
	for i := range Default.History {
		old[i] = wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 5}
	}
	if v := Judge(recompress, old, Default); !v.Suspicious {
		t.Fatal("a false positive older than the history still counts")
	}
}
