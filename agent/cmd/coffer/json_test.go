//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var camelCase = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// jsonProblems lists what a script could trip on in a --json document: keys
// that are not camelCase, and nulls where a value (an empty list is []) was
// due. Durations are checked by name: seconds, in a key ending in Seconds.
func jsonProblems(v any, at string) []string {
	var out []string
	switch v := v.(type) {
	case nil:
		out = append(out, at+" is null")
	case map[string]any:
		for k, e := range v {
			if !camelCase.MatchString(k) {
				out = append(out, fmt.Sprintf("%s.%s is not camelCase", at, k))
			}
			if strings.Contains(strings.ToLower(k), "duration") && !strings.HasSuffix(k, "Seconds") {
				out = append(out, fmt.Sprintf("%s.%s is a duration not named in seconds", at, k))
			}
			out = append(out, jsonProblems(e, at+"."+k)...)
		}
	case []any:
		for i, e := range v {
			out = append(out, jsonProblems(e, fmt.Sprintf("%s[%d]", at, i))...)
		}
	}
	return out
}

// decodeAll reads one JSON document, or one per line (ls --json).
func decodeAll(t *testing.T, out string) []any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(out)))
	var docs []any
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		docs = append(docs, v)
	}
	if len(docs) == 0 {
		t.Fatalf("no JSON at all: %q", out)
	}
	return docs
}

func TestJSONIsCamelCaseWithSecondsAndEmptyLists(t *testing.T) {
	repo, src, cache := setup(t)
	if r := coffer(t, nil, "points", "--repo", repo, "--json"); r.code != 0 || strings.TrimSpace(r.out) != "[]" {
		t.Fatalf("points --json of an empty repository: %+v, want []", r)
	}
	first := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, "--json", src)
	if first.code != 0 {
		t.Fatalf("backup: %+v", first)
	}
	os.WriteFile(filepath.Join(src, "notes.md"), []byte("# notes, changed\n"), 0o644)
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("second backup: %+v", r)
	}
	// --json streams status objects, one a line, on standard error, the
	// last with every byte done; the summary alone is on standard output.
	statuses := decodeAll(t, first.err)
	last := statuses[len(statuses)-1].(map[string]any)
	if last["messageType"] != "status" || last["bytesDone"] != last["totalBytes"] || last["totalsKnown"] != true {
		t.Errorf("last status of backup --json: %v", last)
	}
	for _, st := range statuses {
		for _, p := range jsonProblems(st, "backup status") {
			t.Errorf("coffer backup --json: %s", p)
		}
	}
	docs := map[string]string{"backup": first.out}
	for name, args := range map[string][]string{
		"points": {"points"},
		"ls":     {"ls", "latest"},
		"check":  {"check", "--read-data"},
		"stats":  {"stats"},
		"find":   {"find", "*.md"},
		"forget": {"forget", "--keep-last", "5", "--dry-run"},
		"prune":  {"prune", "--dry-run"},
	} {
		r := coffer(t, nil, append(args, "--repo", repo, "--cache-dir", cache, "--json")...)
		if r.code != 0 {
			t.Fatalf("%s: %+v", name, r)
		}
		docs[name] = r.out
	}
	ps := decodeAll(t, docs["points"])[0].([]any)
	idOf := func(p any) string { return p.(map[string]any)["id"].(string) }
	r := coffer(t, nil, "diff", "--repo", repo, "--json", idOf(ps[0]), idOf(ps[len(ps)-1]))
	if r.code != 0 {
		t.Fatalf("diff: %+v", r)
	}
	docs["diff"] = r.out
	r = coffer(t, nil, "restore", "--repo", repo, "--cache-dir", cache, "--json", "latest", "--target", t.TempDir())
	if r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	docs["restore"] = r.out
	if !strings.Contains(docs["check"], `"problems": []`) {
		t.Errorf("check --json with no problem does not list them as []: %s", docs["check"])
	}
	for name, out := range docs {
		for _, doc := range decodeAll(t, out) {
			for _, p := range jsonProblems(doc, name) {
				t.Errorf("coffer %s --json: %s", name, p)
			}
		}
	}
}
