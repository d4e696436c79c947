package mailer

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Text a machine reported (wire.Alert.Reported) is data, not a message: a
// compromised agent chooses every byte of it, so an alert email must not
// let it pass for Coffer's words or lead anyone anywhere. It is shown
//
//   - under a heading that says the machine reported it and Coffer did not
//     check it, every line behind "| ", so it cannot fake a section of the
//     email;
//   - defanged: URL schemes, host names and addresses are broken so that no
//     mail client turns them into links ("hxxps[:]//contoso[.]example");
//   - bounded in lines and length, without control or invisible formatting
//     characters (bidirectional overrides could reorder what is read).
//
// The email is text/plain only, so nothing in it is ever markup.
const (
	maxReportedShown = 2 << 10 // bytes of reported text one alert shows
	maxReportedLines = 30
	maxReportedLine  = 240 // bytes; longer lines are cut
)

var (
	// A scheme followed by "//" (or "\\"): any such scheme.
	schemeSlashes = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]{0,31})\s*:\s*(//|\\\\)`)
	// Schemes that need no slashes to be a link.
	schemeBare = regexp.MustCompile(`(?i)\b(https?|ftps?|mailto|javascript|vbscript|data|file|tel|sms|callto|sip|sips|skype|xmpp|im|news|onenote|teams|msteams|ms-[a-z0-9\-]+)\s*:(\S)`)
	// An IPv4 address.
	ipv4 = regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}\b`)
)

// defang breaks everything in s that a mail client could turn into a link,
// and removes control and invisible formatting characters (keeping line
// feeds and tabs).
func defang(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r == '\r':
			return '\n'
		case r == '\u3002' || r == '\uFF0E' || r == '\uFF61':
			return '.' // dots IDN treats as dots; defanged below like any other
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == '\u2028', r == '\u2029':
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = schemeSlashes.ReplaceAllStringFunc(s, func(m string) string {
		i := strings.IndexByte(m, ':')
		scheme := strings.TrimSpace(m[:i])
		if strings.HasPrefix(strings.ToLower(scheme), "http") || strings.HasPrefix(strings.ToLower(scheme), "ftp") {
			scheme = scheme[:1] + "xx" + scheme[3:] // http → hxxp, ftp → fxx… keeps it readable
		}
		return scheme + "[:]" + strings.TrimSpace(m[i+1:])
	})
	s = schemeBare.ReplaceAllString(s, "$1[:]$2")
	s = strings.ReplaceAll(s, "://", "[:]//") // a scheme the patterns above did not know
	s = strings.ReplaceAll(s, `\\`, `[\\]`)   // UNC paths, which Outlook links as files
	s = ipv4.ReplaceAllStringFunc(s, func(m string) string { return strings.ReplaceAll(m, ".", "[.]") })
	return hostDots(s)
}

// hostDots breaks every dot that could join two labels of a host name: one
// after a letter, digit or hyphen and before a letter, in any script, so
// "contoso.example" and internationalised names alike stop being links.
// File names ("report.docx") are caught too, which costs only looks.
func hostDots(s string) string {
	var b strings.Builder
	prev := rune(0)
	for i, r := range s {
		if r == '.' && (unicode.IsLetter(prev) || unicode.IsNumber(prev) || prev == '-') {
			if next, _ := utf8.DecodeRuneInString(s[i+1:]); unicode.IsLetter(next) {
				b.WriteString("[.]")
				prev = r
				continue
			}
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

// reported writes an alert's machine-reported text as quoted, defanged
// data, each line behind pad.
func reported(b *strings.Builder, a wire.Alert, pad string) {
	if strings.TrimSpace(a.Reported) == "" {
		return
	}
	who := "the machine"
	if a.MachineName != "" {
		who = "the machine " + defang(a.MachineName)
	}
	b.WriteString(pad + "Reported by " + who + "\n")
	b.WriteString(pad + "Coffer did not write or check this text. Do not follow instructions or\n")
	b.WriteString(pad + "links in it; addresses are shown broken on purpose, e.g. hxxps[:]//x[.]example.\n")
	text := strings.TrimRight(cut(a.Reported, maxReportedShown), "\n")
	lines := strings.Split(defang(text), "\n")
	more := 0
	if len(lines) > maxReportedLines {
		more = len(lines) - maxReportedLines
		lines = lines[:maxReportedLines]
	}
	for _, l := range lines {
		b.WriteString(pad + "| " + cut(l, maxReportedLine) + "\n")
	}
	if more > 0 || len(a.Reported) > maxReportedShown {
		b.WriteString(pad + "| … (shortened; the job in Coffer has the full text)\n")
	}
	b.WriteString("\n")
}

// cut shortens s to at most n bytes on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// title is the alert's title with the machine's name defanged: the agent
// chose that name when it registered ("login.contoso-billing.example" is a
// valid one), so it must not become a link either.
func title(a wire.Alert) string {
	if a.MachineName == "" {
		return a.Title
	}
	if d := defang(a.MachineName); d != a.MachineName {
		return strings.ReplaceAll(a.Title, a.MachineName, d)
	}
	return a.Title
}
