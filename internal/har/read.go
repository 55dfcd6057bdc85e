package har

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ReadOptions bound what Read keeps of the bodies, so that a recording of any
// size is read in bounded memory: entries are decoded one at a time, and
// only text bodies (HTML, JSON, XML, JavaScript) are kept, each up to
// MaxBody and all together up to MaxBodies. The zero value is valid.
type ReadOptions struct {
	// MaxBody is the most bytes of one body kept; 0 means 2 MiB.
	MaxBody int64
	// MaxBodies is the most bytes of all bodies kept; 0 means 64 MiB.
	// Bodies past it are left out and a warning says so.
	MaxBodies int64
}

func (o *ReadOptions) limits() (one, all int64) {
	one, all = 2<<20, 64<<20
	if o != nil && o.MaxBody > 0 {
		one = o.MaxBody
	}
	if o != nil && o.MaxBodies > 0 {
		all = o.MaxBodies
	}
	return one, all
}

// Error is a damaged or non-HAR file: where (the file, the line and column
// when they could be found, the JSON path) and what.
type Error struct {
	File string
	// Line and Col are 1-based; 0 when unknown.
	Line, Col int
	// Offset is the byte offset of the error in the file; -1 when unknown.
	Offset int64
	// Path is the JSON path of the value at fault ("log.entries[12].request.url").
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Col)
	} else if e.Offset >= 0 {
		fmt.Fprintf(&b, "byte %d:", e.Offset)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ReadFile reads a HAR file. Errors are *Error naming the file, the line
// and column, and the JSON path.
func ReadFile(path string, o *ReadOptions) (*Log, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("har: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, &Error{File: path, Offset: -1, Msg: "is a directory, not a HAR file"}
	}
	l, err := Read(f, o)
	var he *Error
	if errors.As(err, &he) {
		he.File = path
	}
	return l, err
}

// Read reads a HAR recording from r. When r is an io.ReadSeeker (a file),
// an error names its line and column.
func Read(r io.Reader, o *ReadOptions) (*Log, error) {
	one, all := o.limits()
	br := bufio.NewReaderSize(r, 64<<10)
	skipped := int64(0)
	if b, err := br.Peek(3); err == nil && string(b) == "\xef\xbb\xbf" {
		// A byte-order mark, as some Windows tools write.
		_, _ = br.Discard(3)
		skipped = 3
	}
	rd := &reader{dec: json.NewDecoder(br), maxBody: one, maxBodies: all, log: &Log{}}
	err := rd.read()
	if err != nil {
		var he *Error
		if errors.As(err, &he) && he.Offset >= 0 {
			he.Offset += skipped
			if rs, ok := r.(io.ReadSeeker); ok {
				he.Line, he.Col = lineCol(rs, he.Offset)
			}
		}
		return nil, err
	}
	sortEntries(rd.log.Entries)
	return rd.log, nil
}

// lineCol finds the line and column of a byte offset by reading the file
// again from its start (a 100 MB recording is not kept in memory).
func lineCol(rs io.ReadSeeker, off int64) (line, col int) {
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return 0, 0
	}
	br := bufio.NewReaderSize(rs, 64<<10)
	line, col = 1, 1
	for i := int64(0); i < off; i++ {
		c, err := br.ReadByte()
		if err != nil {
			break
		}
		if c == '\n' {
			line, col = line+1, 1
		} else if c&0xC0 != 0x80 { // count characters, not UTF-8 continuation bytes
			col++
		}
	}
	return line, col
}

type reader struct {
	dec                *json.Decoder
	maxBody, maxBodies int64
	used               int64
	full               bool // the budget is spent
	log                *Log
}

func (r *reader) errAt(off int64, path, format string, args ...any) *Error {
	return &Error{Offset: off, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// tokenErr turns an error of the decoder into an *Error.
func (r *reader) tokenErr(err error, path string) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return r.errAt(max(se.Offset-1, 0), path, "not valid JSON: %s", se.Error())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return r.errAt(r.dec.InputOffset(), path, "the file ends in the middle of the recording (cut off while it was written or copied?)")
	}
	return r.errAt(r.dec.InputOffset(), path, "%v", err)
}

func (r *reader) read() error {
	start := r.dec.InputOffset()
	tok, err := r.dec.Token()
	if err == io.EOF {
		return r.errAt(0, "", "empty: want a HAR recording (a JSON object with log.entries)")
	}
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return r.errAt(max(se.Offset-1, 0), "", "not JSON, so not a HAR recording (%s)", se.Error())
		}
		return r.tokenErr(err, "")
	}
	if tok != json.Delim('{') {
		return r.errAt(start, "", "want a HAR recording (a JSON object with log.entries), got %s", kind(tok))
	}
	sawLog := false
	for r.dec.More() {
		key, err := r.key("")
		if err != nil {
			return err
		}
		if key != "log" {
			if err := r.skip(key); err != nil {
				return err
			}
			continue
		}
		sawLog = true
		if err := r.readLog(); err != nil {
			return err
		}
	}
	if _, err := r.dec.Token(); err != nil {
		return r.tokenErr(err, "")
	}
	if !sawLog {
		return r.errAt(start, "", "not a HAR recording: the object has no \"log\"")
	}
	off := r.valueStart()
	if _, err := r.dec.Token(); err != io.EOF {
		return r.errAt(off, "", "more data after the recording's closing brace")
	}
	return nil
}

// key reads an object's key.
func (r *reader) key(path string) (string, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return "", r.tokenErr(err, path)
	}
	s, ok := tok.(string)
	if !ok {
		return "", r.errAt(r.dec.InputOffset(), path, "want a key, got %s", kind(tok))
	}
	return s, nil
}

// skip reads past one value, a token at a time.
func (r *reader) skip(path string) error {
	depth := 0
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return r.tokenErr(err, path)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// open reads the opening delimiter of an object or array at path.
func (r *reader) open(path string, want json.Delim) error {
	off := r.valueStart()
	tok, err := r.dec.Token()
	if err != nil {
		return r.tokenErr(err, path)
	}
	if tok != want {
		what := "an object"
		if want == '[' {
			what = "an array"
		}
		return r.errAt(off, path, "want %s, got %s", what, kind(tok))
	}
	return nil
}

func (r *reader) readLog() error {
	if err := r.open("log", '{'); err != nil {
		return err
	}
	sawEntries := false
	for r.dec.More() {
		key, err := r.key("log")
		if err != nil {
			return err
		}
		path := "log." + key
		switch key {
		case "version":
			var v any
			if err := r.decode(path, &v); err != nil {
				return err
			}
			if s, ok := v.(string); ok {
				r.log.Version = s
			}
		case "creator", "browser":
			var c Creator
			if err := r.decode(path, &c); err != nil {
				return err
			}
			if key == "creator" {
				r.log.Creator = c
			} else {
				r.log.Browser = c
			}
		case "pages":
			var ps []rawPage
			if err := r.decode(path, &ps); err != nil {
				return err
			}
			for _, p := range ps {
				r.log.Pages = append(r.log.Pages, Page{ID: p.ID, Title: p.Title, Started: parseTime(p.StartedDateTime)})
			}
		case "entries":
			sawEntries = true
			if err := r.readEntries(); err != nil {
				return err
			}
		default:
			if err := r.skip(path); err != nil {
				return err
			}
		}
	}
	if _, err := r.dec.Token(); err != nil {
		return r.tokenErr(err, "log")
	}
	if !sawEntries {
		return r.errAt(-1, "log", "no \"entries\": not a HAR recording, or an empty one")
	}
	return nil
}

func (r *reader) readEntries() error {
	if err := r.open("log.entries", '['); err != nil {
		return err
	}
	for i := 0; r.dec.More(); i++ {
		path := "log.entries[" + strconv.Itoa(i) + "]"
		start := r.valueStart()
		var raw json.RawMessage
		if err := r.dec.Decode(&raw); err != nil {
			return r.tokenErr(err, path)
		}
		var re rawEntry
		if err := json.Unmarshal(raw, &re); err != nil {
			return r.unmarshalErr(err, raw, start, path)
		}
		e, err := r.entry(i, &re)
		if err != nil {
			var he *Error
			if errors.As(err, &he) && he.Offset < 0 {
				he.Offset = start
			}
			return err
		}
		r.log.Entries = append(r.log.Entries, e)
	}
	if _, err := r.dec.Token(); err != nil {
		return r.tokenErr(err, "log.entries")
	}
	return nil
}

// decode decodes the next value at path into v.
func (r *reader) decode(path string, v any) error {
	start := r.valueStart()
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return r.tokenErr(err, path)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return r.unmarshalErr(err, raw, start, path)
	}
	return nil
}

// unmarshalErr names the path and offset of an error decoding raw, a value
// that starts at offset start of the file.
func (r *reader) unmarshalErr(err error, raw []byte, start int64, path string) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		sub, off := pathAt(raw, te.Offset)
		return r.errAt(start+off, path+sub, "want %s, got %s", typeName(te.Type.String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return r.errAt(start+max(se.Offset-1, 0), path, "not valid JSON: %s", se.Error())
	}
	return r.errAt(start, path, "%v", err)
}

// valueStart is the offset of the next value: the decoder's offset past
// the separators (',', ':') and white space it has not consumed yet.
func (r *reader) valueStart() int64 {
	off := r.dec.InputOffset()
	buf := r.dec.Buffered()
	var b [1]byte
	for {
		n, _ := buf.Read(b[:])
		if n == 0 {
			return off
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
}

// pathAt returns the JSON path (".request.headers[3].value") of the value
// that holds byte offset off of raw, and the offset where that value ends.
func pathAt(raw []byte, off int64) (string, int64) {
	type frame struct {
		array bool
		index int
		key   string
	}
	var stack []frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.array {
				fmt.Fprintf(&b, "[%d]", f.index)
			} else {
				b.WriteString("." + f.key)
			}
		}
		return b.String()
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	expectKey := false
	for {
		tok, err := d.Token()
		if err != nil {
			return path(), off
		}
		end := d.InputOffset()
		if tok == json.Delim('}') || tok == json.Delim(']') {
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			expectKey = len(stack) > 0 && !stack[len(stack)-1].array
			continue
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if top != nil && !top.array && expectKey {
			top.key, _ = tok.(string)
			expectKey = false
			continue
		}
		if top != nil && top.array {
			top.index++
		}
		if end >= off {
			return path(), end
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{})
			expectKey = true
		case json.Delim('['):
			stack = append(stack, frame{array: true, index: -1})
		default:
			expectKey = top != nil && !top.array
		}
	}
}
