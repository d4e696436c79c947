package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
)

// keywords make the text look like code; they sit at the head of the
// frequency ranking, as keywords do in real source files.
var keywords = []string{
	"func", "return", "if", "err", "nil", "{", "}", "(", ")", ":=", "=", "for",
	"range", "var", "const", "type", "struct", "int", "string", "the", "a", "to",
	"of", "and", "in", "is", "//", "#", "import", "package", "else", "case",
}

// vocab is a token list with a Zipf-shaped lookup table: picking a uniform
// 16-bit index into table gives Zipf-distributed tokens at the cost of one
// table read, which keeps generating a gigabyte of text to a few seconds.
// Sampling a Zipf variate per token would cost ten times more.
type vocab struct {
	words []string
	table [1 << 16]uint16
}

func newVocab(seed uint64) *vocab {
	r := rand.New(rand.NewPCG(seed, 0x766f636162)) // "vocab"
	const n = 6000
	v := &vocab{words: append([]string(nil), keywords...)}
	const letters = "abcdefghijklmnopqrstuvwxyz_"
	for len(v.words) < n {
		l := 2 + r.IntN(11)
		b := make([]byte, l)
		for i := range b {
			b[i] = letters[r.IntN(len(letters))]
		}
		// Camel-case some words, as identifiers are.
		if l > 5 && r.IntN(3) == 0 {
			b[l/2] -= 'a' - 'A'
		}
		v.words = append(v.words, string(b))
	}
	// Zipf's law with s = 1.1: the i-th most frequent token has weight
	// (i+2)^-s. The table holds each token in proportion to its weight.
	weights := make([]float64, n)
	var total float64
	for i := range weights {
		weights[i] = math.Pow(float64(i+2), -1.1)
		total += weights[i]
	}
	var cum float64
	k := 0
	for i := range v.table {
		q := (float64(i) + 0.5) / float64(len(v.table)) * total
		for k < n-1 && cum+weights[k] < q {
			cum += weights[k]
			k++
		}
		v.table[i] = uint16(k)
	}
	return v
}

// appendText appends text-like lines to b until it holds at least size
// bytes, then cuts it to exactly size. The style is "code" (indented
// statements, comments) or "log" (timestamped lines with numbers).
func (v *vocab) appendText(b []byte, size int, r *rand.Rand, log bool) []byte {
	b = b[:0]
	ts := int64(1_700_000_000_000) + r.Int64N(1_000_000_000)
	for len(b) < size {
		if log {
			ts += r.Int64N(5000)
			b = strconv.AppendInt(b, ts, 10)
			b = append(b, levels[r.IntN(len(levels))]...)
		} else {
			for range r.IntN(5) {
				b = append(b, '\t')
			}
			if r.IntN(8) == 0 {
				b = append(b, "// "...)
			}
		}
		n := 3 + r.IntN(10)
		var bits uint64
		for i := range n {
			if i%4 == 0 {
				bits = r.Uint64()
			}
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, v.words[v.table[uint16(bits)]]...)
			bits >>= 16
		}
		if log && r.IntN(2) == 0 {
			b = fmt.Appendf(b, " id=%d took=%dms", r.IntN(1_000_000), r.IntN(5000))
		}
		b = append(b, '\n')
	}
	return b[:size]
}

var levels = []string{" INFO ", " INFO ", " INFO ", " DEBUG ", " WARN ", " ERROR "}
