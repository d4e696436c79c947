package portal

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/functions/api"
)

// LinkTTL is how long a one-time sign-in link stays usable.
const LinkTTL = 10 * time.Minute

// maxLinks bounds the outstanding links, so a holder of a token cannot
// fill the control plane's memory with them.
const maxLinks = 1000

// links are one-time sign-in links: a code, in the link's fragment (never
// sent to a server or kept in a log), that the sign-in page exchanges once
// for a session cookie. They live in this process's memory: links are for
// the local, single-process control plane.
type links struct {
	mu    sync.Mutex
	codes map[[32]byte]link
}

type link struct {
	who     api.Principal
	expires time.Time
}

// issue returns a new code for who.
func (l *links) issue(who api.Principal, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.codes == nil {
		l.codes = map[[32]byte]link{}
	}
	l.sweep(now)
	if len(l.codes) >= maxLinks {
		// Drop the one closest to expiring.
		var oldest [32]byte
		first := true
		for k, v := range l.codes {
			if first || v.expires.Before(l.codes[oldest].expires) {
				oldest, first = k, false
			}
		}
		delete(l.codes, oldest)
	}
	code := randomToken()
	l.codes[sha256.Sum256([]byte(code))] = link{who: who, expires: now.Add(LinkTTL)}
	return code
}

// redeem returns the principal of a code and forgets the code; a code works
// once, within LinkTTL.
func (l *links) redeem(code string, now time.Time) (api.Principal, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := sha256.Sum256([]byte(code))
	v, ok := l.codes[k]
	delete(l.codes, k)
	if !ok || !now.Before(v.expires) {
		return api.Principal{}, false
	}
	return v.who, true
}

func (l *links) sweep(now time.Time) {
	for k, v := range l.codes {
		if !now.Before(v.expires) {
			delete(l.codes, k)
		}
	}
}
