package packrefs

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ID is a pack or point ID in binary: half the memory of its hex form and
// no allocation per pack, which is what lets a reader hold a set of a
// million packs, or stream a list of them, within a few tens of MiB.
type ID [32]byte

// ParseID reads 64 lower-case hex digits.
func ParseID(s string) (ID, bool) {
	var id ID
	if !ValidID(s) {
		return id, false
	}
	_, err := hex.Decode(id[:], []byte(s))
	return id, err == nil
}

// String is the ID's lower-case hex form, as in object names.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Header is what a list says besides its packs.
type Header struct {
	Version int
	Point   string
	Packs   int // how many packs it names
}

// ErrInvalid marks a list that is not a valid pack reference list: its
// content is wrong, as opposed to the reader failing. The control plane
// quarantines such objects instead of retrying them.
var ErrInvalid = errors.New("invalid pack reference list")

// DecodeStream reads a list from r and calls fn with each pack ID, in the
// list's (sorted, unique) order, without holding the list: memory stays a
// few KiB whatever its length, so many lists of the largest size can be
// read at once. It accepts exactly the JSON Encode writes: one object with
// the keys "version", "point" and (optionally) "packs" in that order, IDs
// as plain 64-digit strings, nothing after the object but white space, at
// most MaxSize bytes in all. If want is not empty, a list naming another
// point is refused before fn sees any of its packs, so a reader never acts
// on a list that is not the one it asked for. fn may stop the decoding by returning an error,
// which DecodeStream returns as it is; a list that breaks a rule gives an
// error wrapping ErrInvalid, and a failing reader an error wrapping the
// reader's. Packs passed to fn before a later error were valid as far as
// they went; callers that must act on whole lists only wait for the result.
func DecodeStream(r io.Reader, want string, fn func(ID) error) (Header, error) {
	d := &streamDecoder{r: bufio.NewReaderSize(&countingReader{r: r, max: MaxSize}, 32<<10), fn: fn, want: want}
	h, err := d.decode()
	if err != nil {
		var ie invalidError
		if errors.As(err, &ie) {
			return h, fmt.Errorf("%w: %s (at byte %d)", ErrInvalid, ie.msg, d.off)
		}
		return h, err
	}
	return h, nil
}

// invalidError is a rule the list breaks; anything else is the reader's or fn's.
type invalidError struct{ msg string }

func (e invalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return invalidError{fmt.Sprintf(format, args...)}
}

// errTooLarge is what countingReader reports past MaxSize.
var errTooLarge = invalidError{fmt.Sprintf("longer than the %d bytes a pack reference list may have", MaxSize)}

// countingReader fails once more than max bytes have been read.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, errTooLarge
	}
	if rem := c.max + 1 - c.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, errTooLarge
	}
	return n, err
}

type streamDecoder struct {
	r    *bufio.Reader
	fn   func(ID) error
	want string
	off  int64
	buf  [64]byte
}

// next returns the next byte that is not JSON white space.
func (d *streamDecoder) next() (byte, error) {
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return 0, invalid("the list ends early")
			}
			return 0, err
		}
		d.off++
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c, nil
	}
}

func (d *streamDecoder) expect(want byte) error {
	c, err := d.next()
	if err != nil {
		return err
	}
	if c != want {
		return invalid("found %q where %q belongs", c, want)
	}
	return nil
}

// key reads an object key: a short plain string.
func (d *streamDecoder) key() (string, error) {
	var k []byte
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return "", invalid("the list ends early")
			}
			return "", err
		}
		d.off++
		if c == '"' {
			return string(k), nil
		}
		if c == '\\' || c < 0x20 || len(k) >= 16 {
			return "", invalid("unknown key %q…", k)
		}
		k = append(k, c)
	}
}

// id reads a 64-digit ID after its opening quote.
func (d *streamDecoder) id() (ID, error) {
	var id ID
	if _, err := io.ReadFull(d.r, d.buf[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return id, invalid("the list ends inside an ID")
		}
		return id, err
	}
	d.off += 64
	for _, c := range d.buf {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id, invalid("an ID is not 64 lower-case hex digits")
		}
	}
	hex.Decode(id[:], d.buf[:])
	if err := d.expect('"'); err != nil {
		return id, invalid("an ID is not 64 lower-case hex digits")
	}
	return id, nil
}

// literal reads the rest of a bare word (number, null) after its first byte.
func (d *streamDecoder) literal(first byte) (string, error) {
	w := []byte{first}
	for len(w) < 24 {
		c, err := d.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'E') {
			d.r.UnreadByte()
			break
		}
		d.off++
		w = append(w, c)
	}
	return string(w), nil
}

func (d *streamDecoder) decode() (Header, error) {
	var h Header
	if err := d.expect('{'); err != nil {
		return h, err
	}
	order := []string{"version", "point", "packs"}
	for first := true; ; first = false {
		c, err := d.next()
		if err != nil {
			return h, err
		}
		if c == '}' && first {
			break
		}
		if !first {
			if c == '}' {
				break
			}
			if c != ',' {
				return h, invalid("found %q where ',' or '}' belongs", c)
			}
			if c, err = d.next(); err != nil {
				return h, err
			}
		}
		if c != '"' {
			return h, invalid("found %q where a key belongs", c)
		}
		k, err := d.key()
		if err != nil {
			return h, err
		}
		if len(order) == 0 || order[0] != k {
			return h, invalid("key %q where %s belongs; keys are version, point and packs, in that order", k, strings.Join(order, " or "))
		}
		order = order[1:]
		if err := d.expect(':'); err != nil {
			return h, err
		}
		switch k {
		case "version":
			c, err := d.next()
			if err != nil {
				return h, err
			}
			w, err := d.literal(c)
			if err != nil {
				return h, err
			}
			if w != "1" {
				return h, invalid("version %s; this build reads version %d", w, Version)
			}
			h.Version = Version
		case "point":
			if err := d.expect('"'); err != nil {
				return h, err
			}
			id, err := d.id()
			if err != nil {
				return h, invalid("the point ID is not 64 lower-case hex digits")
			}
			h.Point = id.String()
			if d.want != "" && h.Point != d.want {
				return h, invalid("the list names point %s, not %s", h.Point, d.want)
			}
		case "packs":
			if err := d.packs(&h); err != nil {
				return h, err
			}
		default:
			return h, invalid("unknown key %q", k)
		}
	}
	// Only white space may follow.
	for {
		c, err := d.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return h, err
		}
		d.off++
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return h, invalid("data after the list")
		}
	}
	if h.Version != Version {
		return h, invalid("no version")
	}
	if h.Point == "" {
		return h, invalid("no point ID")
	}
	return h, nil
}

func (d *streamDecoder) packs(h *Header) error {
	c, err := d.next()
	if err != nil {
		return err
	}
	if c == 'n' {
		if w, err := d.literal(c); err != nil || w != "null" {
			return invalid("packs must be a list")
		}
		return nil
	}
	if c != '[' {
		return invalid("packs must be a list")
	}
	var prev ID
	for first := true; ; first = false {
		c, err := d.next()
		if err != nil {
			return err
		}
		if c == ']' && first {
			return nil
		}
		if !first {
			if c == ']' {
				return nil
			}
			if c != ',' {
				return invalid("found %q where ',' or ']' belongs in packs", c)
			}
			if c, err = d.next(); err != nil {
				return err
			}
		}
		if c != '"' {
			return invalid("a pack ID must be a string")
		}
		id, err := d.id()
		if err != nil {
			return err
		}
		if !first && string(id[:]) <= string(prev[:]) {
			return invalid("packs are not sorted and unique at %s", id)
		}
		prev = id
		h.Packs++
		if err := d.fn(id); err != nil {
			return err
		}
	}
}
