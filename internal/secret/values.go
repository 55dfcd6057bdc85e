package secret

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Masker masks secrets in text, by pattern and by the values it was made
// with. A nil *Masker masks by pattern only. A Masker does not change once
// made: it is safe for concurrent use.
//
// The values are found without looking at every position of a text: with
// L the length of the shortest value, every occurrence of a value holds a
// 4-byte gram that starts at a multiple of S = L-3 and lies at an offset
// below S in the value. The scan reads the grams at those multiples only,
// through a 64 Kib filter of the values' grams at offsets 0..S-1, and
// checks a value where its gram's bit is set.
type Masker struct {
	filter [1 << 10]uint64
	grams  map[uint32][]gramRef
	values []string
	stride int
	n      int
}

// gramRef says that a gram is found at offset off of values[v].
type gramRef struct{ v, off int32 }

// New returns a Masker for the given values (empty and duplicate values,
// and values shorter than MinValue, are left out) and their escaped forms.
func New(values ...string) *Masker {
	m := &Masker{grams: map[uint32][]gramRef{}}
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) < MinValue {
			continue
		}
		for _, f := range forms(v) {
			if len(f) < MinValue || seen[f] {
				continue
			}
			seen[f] = true
			m.values = append(m.values, f)
		}
	}
	m.n = len(m.values)
	if m.n == 0 {
		return m
	}
	shortest := len(m.values[0])
	for _, v := range m.values {
		shortest = min(shortest, len(v))
	}
	m.stride = shortest - (MinValue - 1)
	for i, v := range m.values {
		for off := 0; off < m.stride; off++ {
			g := gram(v, off)
			h := hash(g)
			m.filter[h>>6] |= 1 << (h & 63)
			m.grams[g] = append(m.grams[g], gramRef{int32(i), int32(off)})
		}
	}
	return m
}

// find appends to spans the [start, end) of every occurrence of m's values
// in s, in no particular order.
func (m *Masker) find(s string, spans [][2]int) [][2]int {
	for q := 0; q+MinValue <= len(s); q += m.stride {
		g := gram(s, q)
		h := hash(g)
		if m.filter[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, r := range m.grams[g] {
			start := q - int(r.off)
			if v := m.values[r.v]; start >= 0 && strings.HasPrefix(s[start:], v) {
				spans = append(spans, [2]int{start, start + len(v)})
			}
		}
	}
	return spans
}

// maskValues replaces every occurrence of m's values in s; occurrences that
// overlap become one Marker.
func (m *Masker) maskValues(s string) string {
	var buf [8][2]int
	spans := m.find(s, buf[:0])
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	b := make([]byte, 0, len(s))
	last := 0
	for i := 0; i < len(spans); {
		start, end := spans[i][0], spans[i][1]
		for i++; i < len(spans) && spans[i][0] < end; i++ {
			end = max(end, spans[i][1])
		}
		// A value that starts or ends inside a character (it is not
		// valid UTF-8 itself) takes the whole character with it.
		for start > last && !utf8.RuneStart(s[start]) {
			start--
		}
		for end < len(s) && !utf8.RuneStart(s[end]) {
			end++
		}
		if start < last { // a character shared with the previous span
			last = max(last, end)
			continue
		}
		b = append(b, s[last:start]...)
		b = append(b, Marker...)
		last = end
	}
	return string(append(b, s[last:]...))
}

// gram returns s[i:i+4] as a little-endian number.
func gram(s string, i int) uint32 {
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}

// hash maps a gram to a bit of Masker.filter.
func hash(g uint32) uint32 { return (g * 0x9E3779B1) >> 16 }
