package evidence

import (
	"strings"
	"sync"
)

// Ranks of the parts of an event, most specific first: an exception line
// says more than a body line, a body line more than a frame, a frame more
// than the headline ("Internal Server Error: /login" says least of all).
const (
	rankException = iota
	rankBody
	rankStack
	rankHeadline
	numRanks
)

// matcher accumulates the signatures matching the parts of one event and
// keeps the best: the lowest (generic, rank, catalog index).
type matcher struct {
	c         *Catalog
	best      int
	bestScore int
	matched   []int    // signature indexes, in the order found
	seen      []uint64 // bitset over signature indexes: in matched
	tried     []uint64 // bitset: already verified against the current part
	triedList []int
	fields    []kv
}

func (m *matcher) reset(c *Catalog) {
	if m.c != c {
		m.c = c
		words := (len(c.sigs) + 63) / 64
		m.seen = make([]uint64, words)
		m.tried = make([]uint64, words)
	} else {
		for _, i := range m.matched {
			m.seen[i/64] &^= 1 << (i % 64)
		}
	}
	m.best, m.bestScore = -1, int(^uint(0)>>1)
	m.matched = m.matched[:0]
	m.fields = nil
}

// scanPart matches one part of the event (a line) at a rank.
func (m *matcher) scanPart(text string, rank int, stack bool) {
	if text == "" {
		return
	}
	ks, owner := m.c.msgKeys, m.c.msgOwner
	if stack {
		ks, owner = m.c.stackKeys, m.c.stackOwner
	}
	ks.scan(text, func(id int) {
		si := owner[id]
		if m.tried[si/64]&(1<<(si%64)) != 0 {
			return
		}
		m.tried[si/64] |= 1 << (si % 64)
		m.triedList = append(m.triedList, si)
		s := m.c.sigs[si]
		if s.re != nil && !s.re.MatchString(text) {
			return
		}
		if !m.fieldsMatch(s) {
			return
		}
		m.hit(si, rank)
	})
	for _, si := range m.triedList {
		m.tried[si/64] &^= 1 << (si % 64)
	}
	m.triedList = m.triedList[:0]
}

// scanFieldOnly checks the signatures decided by fields alone.
func (m *matcher) scanFieldOnly() {
	if len(m.fields) == 0 {
		return
	}
	for _, si := range m.c.fieldOnly {
		if m.fieldsMatch(m.c.sigs[si]) {
			m.hit(si, rankHeadline)
		}
	}
}

func (m *matcher) fieldsMatch(s *Signature) bool {
	for _, fc := range s.fields {
		found := false
		for _, f := range m.fields {
			if f.k == fc.name {
				found = fc.re.MatchString(f.value())
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (m *matcher) hit(si, rank int) {
	s := m.c.sigs[si]
	score := rank*len(m.c.sigs) + si
	if s.Generic {
		score += numRanks * len(m.c.sigs)
	}
	if score < m.bestScore {
		m.best, m.bestScore = si, score
	}
	if m.seen[si/64]&(1<<(si%64)) == 0 {
		m.seen[si/64] |= 1 << (si % 64)
		m.matched = append(m.matched, si)
	}
}

// also lists the other signatures that matched, comma-separated, for the
// Evidence's "also" field.
func (m *matcher) also(c *Catalog) string {
	if len(m.matched) < 2 {
		return ""
	}
	var b strings.Builder
	for _, si := range m.matched {
		if si == m.best {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c.sigs[si].ID)
	}
	return b.String()
}

var (
	defaultOnce sync.Once
	defaultCat  *Catalog
)

// defaultCatalog is DefaultCatalog, compiled once.
func defaultCatalog() *Catalog {
	defaultOnce.Do(func() { defaultCat = DefaultCatalog() })
	return defaultCat
}
