package azureblob

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// ContainerURL is what a repository URL says, without the SAS signature.
type ContainerURL struct {
	Scheme    string // http or https
	Host      string // ACCOUNT.blob.core.windows.net, or 127.0.0.1:10000 for Azurite
	Account   string // from the path for path-style hosts (Azurite); empty otherwise
	Container string
	// Permissions are the SAS's sp letters (e.g. "crl"); empty when the SAS
	// does not say (an account SAS names them too, a stored access policy
	// may not).
	Permissions string
	Expiry      time.Time // zero if the SAS does not say
}

// String is the URL without its query, safe for messages and logs.
func (u ContainerURL) String() string {
	path := "/" + u.Container
	if u.Account != "" {
		path = "/" + u.Account + path
	}
	return u.Scheme + "://" + u.Host + path
}

var containerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

const example = "https://ACCOUNT.blob.core.windows.net/CONTAINER?sv=…&sp=crl&sig=…"

// ParseURL checks a container URL with a SAS and returns its parts. Hosts
// that are IP addresses, localhost or carry a port are path-style (as
// Azurite is): the first path segment is the account, the second the
// container. Others have the container as the only path segment.
func ParseURL(s string) (ContainerURL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		// url's error repeats the URL, SAS included; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return ContainerURL{}, fmt.Errorf("the container URL does not parse (%v); it should look like %s", err, example)
	}
	c := ContainerURL{Scheme: strings.ToLower(u.Scheme), Host: u.Host}
	if c.Scheme != "http" && c.Scheme != "https" {
		return ContainerURL{}, fmt.Errorf("the container URL must start with https:// (or http:// for an emulator), not %q", u.Scheme+"://")
	}
	if u.Host == "" {
		return ContainerURL{}, fmt.Errorf("the container URL has no host; it should look like %s", example)
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		segs = nil
	}
	pathStyle := isPathStyle(u)
	want := 1
	if pathStyle {
		want = 2
	}
	switch {
	case len(segs) < want:
		return ContainerURL{}, fmt.Errorf("the URL %s names no container; add the container after the host, as in %s", c.Scheme+"://"+c.Host+u.Path, example)
	case len(segs) > want:
		return ContainerURL{}, fmt.Errorf("the URL %s names a blob or folder inside a container; give the container's URL, as in %s", c.Scheme+"://"+c.Host+u.Path, example)
	}
	if pathStyle {
		c.Account = segs[0]
	}
	c.Container = segs[want-1]
	if !containerName.MatchString(c.Container) || strings.Contains(c.Container, "--") {
		return ContainerURL{}, fmt.Errorf("%q is not a valid container name: use 3 to 63 lowercase letters, digits and single hyphens, starting with a letter or digit", c.Container)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return ContainerURL{}, fmt.Errorf("the SAS in the container URL does not parse (%v); copy it again, whole", err)
	}
	if q.Get("sig") == "" {
		return ContainerURL{}, fmt.Errorf("the URL %s has no SAS token (no sig= in its query); append a container SAS with create, read and list permissions, e.g. from: az storage container generate-sas --account-name ACCOUNT --name %s --permissions crl --expiry YYYY-MM-DD --https-only", c, c.Container)
	}
	c.Permissions = q.Get("sp")
	if se := q.Get("se"); se != "" {
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02"} {
			if t, err := time.Parse(layout, se); err == nil {
				c.Expiry = t
				break
			}
		}
	}
	return c, nil
}

func isPathStyle(u *url.URL) bool {
	host := u.Hostname()
	if host == "localhost" || net.ParseIP(host) != nil {
		return true
	}
	// An emulator under a container or compose name ("azurite:10000").
	return u.Port() != "" && !strings.Contains(host, ".blob.")
}

// sigValue matches a SAS signature wherever it appears in a message.
var sigValue = regexp.MustCompile(`(?i)(sig=)[^&\s"']+`)

// redact removes SAS signatures from s.
func redact(s string) string { return sigValue.ReplaceAllString(s, "${1}REDACTED") }
