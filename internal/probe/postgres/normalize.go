package postgres

import (
	"strings"
	"unicode/utf8"
)

// maxQueryText bounds a normalized query, in characters.
const maxQueryText = 160

// normalizeQuery prepares a query's text for grouping and for reports:
// whitespace runs become one blank, string literals ('...', E'...' with
// backslash escapes, B'...', X'...', N'...', U&'...' and $tag$...$tag$) and
// numbers become "?", double-quoted identifiers and $1 parameters stay, and
// the result is cut to n characters (the last one "…" when cut). A literal
// cut off by the end of the text (pg_stat_activity truncates) becomes "?"
// too, so no literal's text survives.
func normalizeQuery(s string, n int) string {
	var b strings.Builder
	b.Grow(min(len(s), 4*n))
	space := false
	runes := 0
	prev := byte(' ') // the last byte written or skipped, for word boundaries
	write := func(t string) {
		if space && b.Len() > 0 {
			b.WriteByte(' ')
			runes++
		}
		space = false
		b.WriteString(t)
		runes += utf8.RuneCountInString(t)
	}
	for i := 0; i < len(s) && runes <= n; {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			space = true
			prev = ' '
			i++
			continue
		case c == '\'':
			i = skipString(s, i+1, false)
			write("?")
		case (c == 'E' || c == 'e') && i+1 < len(s) && s[i+1] == '\'' && !isWord(prev):
			i = skipString(s, i+2, true)
			write("?")
		case (c == 'B' || c == 'b' || c == 'X' || c == 'x' || c == 'N' || c == 'n') && i+1 < len(s) && s[i+1] == '\'' && !isWord(prev):
			i = skipString(s, i+2, false)
			write("?")
		case (c == 'U' || c == 'u') && strings.HasPrefix(s[i+1:], "&'") && !isWord(prev):
			i = skipString(s, i+3, false)
			write("?")
		case c == '$' && !isWord(prev):
			if end, ok := dollarTag(s, i); ok {
				tag := s[i:end]
				close := strings.Index(s[end:], tag)
				if close < 0 {
					i = len(s)
				} else {
					i = end + close + len(tag)
				}
				write("?")
				break
			}
			// $1: a parameter, kept with its digits.
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			write(s[i:j])
			i = j
		case c == '"':
			j := i + 1
			for j < len(s) {
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
			write(oneLineIdent(validPrefix(s[i:min(j, len(s))])))
			i = j
		case isDigit(c) && !isWord(prev) || c == '.' && i+1 < len(s) && isDigit(s[i+1]) && !isWord(prev):
			i = skipNumber(s, i)
			write("?")
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				write("\uFFFD")
				i++
			} else {
				write(s[i : i+size])
				i += size
			}
		}
		prev = s[i-1]
	}
	out := b.String()
	if utf8.RuneCountInString(out) > n {
		r := []rune(out)
		out = string(r[:n-1]) + "…"
	}
	return out
}

// skipString returns the index after the string literal whose text starts
// at i (a doubled quote is a quote inside; with backslash, so is an
// escaped one).
func skipString(s string, i int, backslash bool) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			if backslash {
				i += 2
				continue
			}
		case '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(s)
}

// dollarTag reads the opening "$tag$" or "$$" of a dollar-quoted string at
// s[i] and returns the index after it.
func dollarTag(s string, i int) (int, bool) {
	j := i + 1
	if j < len(s) && isDigit(s[j]) {
		return 0, false // $1
	}
	for j < len(s) && (isLetter(s[j]) || isDigit(s[j]) || s[j] == '_') {
		j++
	}
	if j < len(s) && s[j] == '$' {
		return j + 1, true
	}
	return 0, false
}

// skipNumber returns the index after the number at s[i]: digits, a
// fraction, an exponent.
func skipNumber(s string, i int) int {
	for i < len(s) && (isDigit(s[i]) || s[i] == '.') {
		i++
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			i = j
		}
	}
	return i
}

// oneLineIdent replaces the line breaks and tabs a quoted identifier may
// hold with blanks: a normalized query is one line.
func oneLineIdent(s string) string {
	if !strings.ContainsAny(s, "\n\r\t\f") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', '\t', '\f':
			return ' '
		}
		return r
	}, s)
}

// validPrefix returns s with any invalid UTF-8 replaced.
func validPrefix(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isWord reports a byte that continues an identifier or number: a digit
// after it is part of the same token (t1, col_2, $1), not a literal.
func isWord(c byte) bool { return isLetter(c) || isDigit(c) || c == '_' || c == '$' || c >= 0x80 }

// shortQuery normalizes a query and bounds it to n characters keeping both
// ends: a blocker's query is recognised by its head (which table) and its
// tail (FOR UPDATE, the WHERE clause's last terms), which a cut that keeps
// only the head would lose.
func shortQuery(s string, n int) string {
	full := normalizeQuery(s, len(s)+1)
	r := []rune(full)
	if len(r) <= n {
		return full
	}
	tail := n / 3
	head := n - tail - 3
	return strings.TrimRight(string(r[:head]), " ") + " … " + strings.TrimLeft(string(r[len(r)-tail:]), " ")
}
