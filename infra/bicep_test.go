package infra

// A reader for the small part of Bicep the consistency test needs, since the
// Bicep CLI cannot run here: declarations (resource, module, var, param),
// object entries and array elements, and the values of simple expressions
// (string literals, arrays of them, and names that lead to them through
// vars, param defaults and the params modules are called with). Anything
// else (function calls, interpolations, module outputs) is "unknown", and
// the checks that need a value report it rather than guess.

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// bicepFile is one .bicep file. clean has the comments blanked; masked also
// has every string's contents replaced by '_' (the quotes stay), so brackets,
// colons and keywords can be found without being fooled by strings. All
// three have the same length and the same offsets.
type bicepFile struct {
	path, raw, clean, masked string
}

func newBicepFile(path, raw string) *bicepFile {
	clean, masked := blank(raw)
	return &bicepFile{path: path, raw: raw, clean: clean, masked: masked}
}

// blank returns src with comments replaced by spaces (clean), and the same
// with string contents replaced by '_' as well (masked). Newlines are kept.
// Strings may hold ${...} interpolations, which may hold strings.
func blank(src string) (clean, masked string) {
	c, m := []byte(src), []byte(src)
	type frame struct {
		interp bool
		depth  int // brace depth inside an interpolation
	}
	var stack []frame
	maskAt := func(i int) {
		if m[i] != '\n' {
			m[i] = '_'
		}
	}
	blankAt := func(i int) {
		if c[i] != '\n' {
			c[i], m[i] = ' ', ' '
		}
	}
	n := len(src)
	for i := 0; i < n; {
		inside := len(stack) > 0
		inCode := !inside || stack[len(stack)-1].interp
		if inCode {
			switch {
			case strings.HasPrefix(src[i:], "//"):
				for ; i < n && src[i] != '\n'; i++ {
					blankAt(i)
				}
				continue
			case strings.HasPrefix(src[i:], "/*"):
				end := strings.Index(src[i+2:], "*/")
				stop := n
				if end >= 0 {
					stop = i + 2 + end + 2
				}
				for ; i < stop; i++ {
					blankAt(i)
				}
				continue
			case strings.HasPrefix(src[i:], "'''"):
				end := strings.Index(src[i+3:], "'''")
				stop := n
				if end >= 0 {
					stop = i + 3 + end + 3
				}
				for j := i; j < stop; j++ {
					if inside || (j >= i+3 && j < stop-3) {
						maskAt(j)
					}
				}
				i = stop
				continue
			}
			switch ch := src[i]; {
			case ch == '\'':
				if inside {
					maskAt(i)
				}
				stack = append(stack, frame{})
			case inside && ch == '{':
				maskAt(i)
				stack[len(stack)-1].depth++
			case inside && ch == '}':
				maskAt(i)
				if top := &stack[len(stack)-1]; top.depth == 0 {
					stack = stack[:len(stack)-1]
				} else {
					top.depth--
				}
			case inside:
				maskAt(i)
			}
			i++
			continue
		}
		// In a string.
		switch {
		case src[i] == '\\' && i+1 < n:
			maskAt(i)
			maskAt(i + 1)
			i += 2
		case strings.HasPrefix(src[i:], "${"):
			maskAt(i)
			maskAt(i + 1)
			stack = append(stack, frame{interp: true})
			i += 2
		case src[i] == '\'':
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				maskAt(i)
			}
			i++
		default:
			maskAt(i)
			i++
		}
	}
	return string(c), string(m)
}

// closing returns the index of the bracket that closes the one at open, in
// masked text, or -1.
func closing(masked string, open int) int {
	depth := 0
	for i := open; i < len(masked); i++ {
		switch masked[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// exprEnd returns where the expression starting at from ends: the end of its
// line, or of the line where its last bracket closes.
func exprEnd(masked string, from int) int {
	depth := 0
	for i := from; i < len(masked); i++ {
		switch masked[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case '\n':
			if depth <= 0 {
				return i
			}
		}
	}
	return len(masked)
}

// segment is a piece of Bicep text with its masked twin.
type segment struct{ clean, masked string }

func (s segment) trim() segment {
	l := len(s.masked) - len(strings.TrimLeft(s.masked, " \t\r\n,"))
	r := len(strings.TrimRight(s.masked, " \t\r\n,"))
	if l >= r {
		return segment{}
	}
	return segment{s.clean[l:r], s.masked[l:r]}
}

// items splits the inside of an object or array into its entries, which
// Bicep separates by newlines (or commas on one line).
func items(s segment) []segment {
	var out []segment
	depth, start := 0, 0
	flush := func(end int) {
		if it := (segment{s.clean[start:end], s.masked[start:end]}).trim(); it.masked != "" {
			out = append(out, it)
		}
	}
	for i := 0; i < len(s.masked); i++ {
		switch s.masked[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case '\n', ',':
			if depth == 0 {
				flush(i)
				start = i + 1
			}
		}
	}
	flush(len(s.masked))
	return out
}

type entry struct {
	key   string
	value segment
}

var keyRE = regexp.MustCompile(`^('_*'|[A-Za-z_]\w*)[ \t]*:`)

// entries reads the inside of an object literal.
func entries(s segment) []entry {
	var out []entry
	for _, it := range items(s) {
		loc := keyRE.FindStringSubmatchIndex(it.masked)
		if loc == nil {
			continue // a decorator or something this reader does not need
		}
		key := strings.Trim(it.clean[loc[2]:loc[3]], "'")
		out = append(out, entry{key, segment{it.clean[loc[1]:], it.masked[loc[1]:]}.trim()})
	}
	return out
}

// inner returns the inside of s when s is a bracketed literal opening with
// open ('{' or '['), and whether it is.
func inner(s segment, open byte) (segment, bool) {
	s = s.trim()
	if s.masked == "" || s.masked[0] != open || closing(s.masked, 0) != len(s.masked)-1 {
		return segment{}, false
	}
	return segment{s.clean[1 : len(s.clean)-1], s.masked[1 : len(s.masked)-1]}, true
}

// decl is a resource or module declaration.
type decl struct {
	file     *bicepFile
	kind     string // resource or module
	symbol   string
	typ      string // resource type with API version, or module path
	start    int    // offset of the keyword
	loopVar  string // [for loopVar in loopExpr: {...}]
	loopExpr segment
	body     segment // inside the braces
}

func (d decl) field(key string) (segment, bool) {
	for _, e := range entries(d.body) {
		if e.key == key {
			return e.value, true
		}
	}
	return segment{}, false
}

var (
	declRE = regexp.MustCompile(`(?m)^[ \t]*(resource|module)[ \t]+([A-Za-z_]\w*)[ \t]+'`)
	forRE  = regexp.MustCompile(`^\[\s*for\s+(?:\(\s*([A-Za-z_]\w*)\s*,\s*[A-Za-z_]\w*\s*\)|([A-Za-z_]\w*))\s+in\s+`)
	wsRE   = regexp.MustCompile(`^\s*`)
)

func (f *bicepFile) decls() []decl {
	var out []decl
	for _, loc := range declRE.FindAllStringSubmatchIndex(f.masked, -1) {
		d := decl{file: f, kind: f.masked[loc[2]:loc[3]], symbol: f.masked[loc[4]:loc[5]], start: loc[2]}
		q1 := loc[1] - 1
		q2 := strings.IndexByte(f.masked[q1+1:], '\'')
		if q2 < 0 {
			continue
		}
		q2 += q1 + 1
		d.typ = f.clean[q1+1 : q2]
		i := q2 + 1
		skip := func() { i += len(wsRE.FindString(f.masked[i:])) }
		skip()
		if strings.HasPrefix(f.masked[i:], "existing") {
			i += len("existing")
			skip()
		}
		if !strings.HasPrefix(f.masked[i:], "=") {
			continue
		}
		i++
		skip()
		if m := forRE.FindStringSubmatch(f.masked[i:]); m != nil {
			d.loopVar = m[1] + m[2]
			j := i + len(m[0])
			exprStart, depth := j, 0
			for ; j < len(f.masked); j++ {
				c := f.masked[j]
				if c == ':' && depth == 0 {
					break
				}
				switch c {
				case '(', '[', '{':
					depth++
				case ')', ']', '}':
					depth--
				}
			}
			d.loopExpr = segment{f.clean[exprStart:j], f.masked[exprStart:j]}.trim()
			i = j + 1
			skip()
		}
		if strings.HasPrefix(f.masked[i:], "if") {
			open := strings.IndexByte(f.masked[i:], '(')
			if open < 0 {
				continue
			}
			i = closing(f.masked, i+open) + 1
			skip()
		}
		if i >= len(f.masked) || f.masked[i] != '{' {
			continue
		}
		end := closing(f.masked, i)
		if end < 0 {
			continue
		}
		d.body = segment{f.clean[i+1 : end], f.masked[i+1 : end]}
		out = append(out, d)
	}
	return out
}

// declaration finds `var name = expr` or `param name type [= expr]` and
// returns the kind, and the expression (the default for a param) if any.
func (f *bicepFile) declaration(name string) (kind string, expr segment, hasExpr bool) {
	q := regexp.QuoteMeta(name)
	if loc := regexp.MustCompile(`(?m)^[ \t]*var[ \t]+` + q + `[ \t]*=[ \t]*`).FindStringIndex(f.masked); loc != nil {
		end := exprEnd(f.masked, loc[1])
		return "var", segment{f.clean[loc[1]:end], f.masked[loc[1]:end]}.trim(), true
	}
	if loc := regexp.MustCompile(`(?m)^[ \t]*param[ \t]+` + q + `[ \t]+[A-Za-z_]\w*[ \t]*(=[ \t]*)?`).FindStringSubmatchIndex(f.masked); loc != nil {
		if loc[2] < 0 {
			return "param", segment{}, false
		}
		end := exprEnd(f.masked, loc[1])
		return "param", segment{f.clean[loc[1]:end], f.masked[loc[1]:end]}.trim(), true
	}
	return "", segment{}, false
}

// project is every .bicep file under infra/, keyed by slash path from the
// repository root.
type project struct {
	files map[string]*bicepFile
	order []string
}

func newProject(files map[string]string) *project {
	p := &project{files: map[string]*bicepFile{}}
	for name, src := range files {
		p.files[name] = newBicepFile(name, src)
		p.order = append(p.order, name)
	}
	slices.Sort(p.order)
	return p
}

func (p *project) decls() []decl {
	var out []decl
	for _, name := range p.order {
		out = append(out, p.files[name].decls()...)
	}
	return out
}

func (p *project) resources(typePrefix string) []decl {
	var out []decl
	for _, d := range p.decls() {
		if d.kind == "resource" && strings.HasPrefix(d.typ, typePrefix) {
			out = append(out, d)
		}
	}
	return out
}

var identRE = regexp.MustCompile(`^[A-Za-z_]\w*$`)

// literal returns the value of a plain string literal.
func literal(s segment) (string, bool) {
	m := s.masked
	if len(m) < 2 || m[0] != '\'' || m[len(m)-1] != '\'' || strings.Count(m, "'") != 2 || strings.Contains(s.clean, "${") {
		return "", false
	}
	v := s.clean[1 : len(s.clean)-1]
	return strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(v), true
}

// values returns the strings expr can evaluate to, as far as this reader can
// tell: a literal, the literals of an array, or where a name leads. nil means
// unknown.
func (p *project) values(f *bicepFile, expr segment, depth int) []string {
	expr = expr.trim()
	if depth > 10 || expr.masked == "" {
		return nil
	}
	if v, ok := literal(expr); ok {
		return []string{v}
	}
	if in, ok := inner(expr, '['); ok {
		var out []string
		for _, it := range items(in) {
			out = append(out, p.values(f, it, depth+1)...)
		}
		return out
	}
	if identRE.MatchString(expr.masked) {
		return p.nameValues(f, expr.masked, depth)
	}
	return nil
}

// nameValues follows a var, or a param to its default and to the values the
// module's callers pass.
func (p *project) nameValues(f *bicepFile, name string, depth int) []string {
	kind, expr, hasExpr := f.declaration(name)
	switch kind {
	case "var":
		return p.values(f, expr, depth+1)
	case "param":
		var out []string
		called, usesDefault := false, false
		for _, d := range p.decls() {
			if d.kind != "module" || modulePath(d.file.path, d.typ) != f.path {
				continue
			}
			called = true
			params, ok := d.field("params")
			if !ok {
				usesDefault = true
				continue
			}
			obj, _ := inner(params, '{')
			found := false
			for _, e := range entries(obj) {
				if e.key == name {
					out = append(out, p.values(d.file, e.value, depth+1)...)
					found = true
				}
			}
			if !found {
				usesDefault = true
			}
		}
		if (!called || usesDefault) && hasExpr {
			out = append(out, p.values(f, expr, depth+1)...)
		}
		return out
	}
	return nil
}

// objectEntries returns the entries of an object expression: a literal, a
// name leading to one, or union() of those.
func (p *project) objectEntries(f *bicepFile, expr segment, depth int) []entry {
	expr = expr.trim()
	if depth > 10 || expr.masked == "" {
		return nil
	}
	if in, ok := inner(expr, '{'); ok {
		return entries(in)
	}
	if identRE.MatchString(expr.masked) {
		if kind, e, ok := f.declaration(expr.masked); kind == "var" && ok {
			return p.objectEntries(f, e, depth+1)
		}
		return nil
	}
	if strings.HasPrefix(expr.masked, "union(") && closing(expr.masked, len("union")) == len(expr.masked)-1 {
		args := segment{expr.clean[len("union(") : len(expr.clean)-1], expr.masked[len("union(") : len(expr.masked)-1]}
		var out []entry
		for _, a := range items(args) {
			out = append(out, p.objectEntries(f, a, depth+1)...)
		}
		return out
	}
	return nil
}

// lookup follows keys through nested object literals.
func (p *project) lookup(f *bicepFile, expr segment, keys ...string) (segment, bool) {
	for _, k := range keys {
		found := false
		for _, e := range p.objectEntries(f, expr, 0) {
			if e.key == k {
				expr, found = e.value, true
				break
			}
		}
		if !found {
			return segment{}, false
		}
	}
	return expr, true
}

// modulePath resolves a module's path against the file that uses it; ""
// for registry modules.
func modulePath(from, target string) string {
	if strings.HasPrefix(target, "br/") || strings.HasPrefix(target, "br:") || strings.HasPrefix(target, "ts/") || strings.HasPrefix(target, "ts:") {
		return ""
	}
	return path.Join(path.Dir(from), target)
}

// The reader's own tests: the consistency checks are only as good as it.

func TestBlankMasksStringsAndComments(t *testing.T) {
	src := "var a = 'x//y' // note\nvar b = '${f('}')}z' /* c */\n"
	clean, masked := blank(src)
	if want := "var a = 'x//y'        \nvar b = '${f('}')}z'        \n"; clean != want {
		t.Errorf("clean = %q, want %q", clean, want)
	}
	if want := "var a = '____'        \nvar b = '__________'        \n"; masked != want {
		t.Errorf("masked = %q, want %q", masked, want)
	}
}

func TestValuesFollowVarsParamsAndModuleCalls(t *testing.T) {
	p := newProject(map[string]string{
		"infra/main.bicep": `var q = 'alerts'
var list = [
  'a'
  q
]
module m 'mod/m.bicep' = if (true) {
  name: 'm'
  params: {
    queue: q
    names: list
  }
}
`,
		"infra/mod/m.bicep": `param queue string
param names array
param other string = 'dflt'
resource t 'X/y@1' = [for n in names: {
  name: n
}]
`,
	})
	mod := p.files["infra/mod/m.bicep"]
	for _, c := range []struct {
		expr string
		want string
	}{
		{"queue", "alerts"},
		{"names", "a alerts"},
		{"other", "dflt"},
		{"'it\\'s'", "it's"},
		{"'${queue}'", ""},
		{"concat(names)", ""},
	} {
		_, m := blank(c.expr)
		if got := strings.Join(p.values(mod, segment{c.expr, m}, 0), " "); got != c.want {
			t.Errorf("values(%s) = %q, want %q", c.expr, got, c.want)
		}
	}
	ds := mod.decls()
	if len(ds) != 1 || ds[0].loopVar != "n" || ds[0].loopExpr.clean != "names" || ds[0].typ != "X/y@1" {
		t.Fatalf("decls = %+v", ds)
	}
	if mains := p.files["infra/main.bicep"].decls(); len(mains) != 1 || mains[0].kind != "module" || modulePath(mains[0].file.path, mains[0].typ) != "infra/mod/m.bicep" {
		t.Fatalf("module decls = %+v", mains)
	}
}
