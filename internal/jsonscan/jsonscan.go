// Package jsonscan splits one JSON object into its members without reflection.
//
// Every beacon is a small JSON object whose values the collector and the gateway want as raw
// bytes. Unmarshalling it with encoding/json costs reflection and a field lookup per member,
// a visible share of the CPU per beacon. An Object walks the members itself and hands out
// each key and value as a sub-slice of the document, with no allocation.
//
// It is meant as a fast path in front of encoding/json, never a replacement: it validates
// the whole document and gives up on anything it does not read exactly as encoding/json
// would (a key with escapes or non-ASCII bytes, nesting deeper than MaxDepth) and on any
// invalid document. The caller then decodes with encoding/json and so keeps its exact
// behaviour and error messages.
package jsonscan

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// MaxDepth bounds the nesting an Object follows; the top-level object is depth 1. Deeper
// documents are left to encoding/json, which allows far more.
const MaxDepth = 32

// Object walks the members of the JSON object that makes up a whole document:
//
//	o := jsonscan.NewObject(doc)
//	for key, value, ok := o.Next(); ok; key, value, ok = o.Next() {
//		// remember key and value
//	}
//	if !o.Complete() {
//		// fall back to encoding/json, forgetting what was remembered
//	}
//
// A member is only handed out once its value has been validated, but the document as a
// whole is only known to be valid when Complete reports true: until then a caller must not
// act on what it has seen.
type Object struct {
	doc   []byte
	pos   int
	state uint8
}

const (
	stateStart    uint8 = iota // before the opening brace
	stateAfter                 // after a member, expecting ',' or '}'
	stateComplete              // the object and the trailing white space were read
	stateDeclined              // invalid, or not read here
)

// NewObject returns an Object over doc, which it never modifies or retains beyond the
// slices it hands out.
func NewObject(doc []byte) Object { return Object{doc: doc} }

// Next returns the next member: its key, without quotes, and its value exactly as
// encoding/json hands it to an UnmarshalJSON method (a sub-slice of the document without
// surrounding white space; null is "null"). Keys are plain: printable ASCII without
// escapes. ok is false at the end of the object and when the scanner gives up; Complete
// tells the two apart.
func (o *Object) Next() (key, value []byte, ok bool) {
	switch o.state {
	case stateStart:
		o.space()
		if !o.next('{') {
			return o.decline()
		}
		o.space()
		if o.next('}') {
			return o.finish()
		}
	case stateAfter:
		o.space()
		if o.next('}') {
			return o.finish()
		}
		if !o.next(',') {
			return o.decline()
		}
		o.space()
	default:
		return nil, nil, false
	}

	key, plain := o.plainKey()
	if !plain {
		return o.decline()
	}
	o.space()
	if !o.next(':') {
		return o.decline()
	}
	o.space()
	start := o.pos
	if !o.value(2) {
		return o.decline()
	}
	o.state = stateAfter
	return key, o.doc[start:o.pos], true
}

// Complete reports whether the whole document was read: one valid object with plain keys,
// nesting no deeper than MaxDepth, and nothing but white space after it. It is false until
// Next has returned ok false.
func (o *Object) Complete() bool { return o.state == stateComplete }

func (o *Object) decline() ([]byte, []byte, bool) {
	o.state = stateDeclined
	return nil, nil, false
}

// finish checks that only white space follows the object.
func (o *Object) finish() ([]byte, []byte, bool) {
	o.space()
	if o.pos != len(o.doc) {
		return o.decline()
	}
	o.state = stateComplete
	return nil, nil, false
}

func (o *Object) next(c byte) bool {
	if o.pos < len(o.doc) && o.doc[o.pos] == c {
		o.pos++
		return true
	}
	return false
}

func (o *Object) peek() byte {
	if o.pos < len(o.doc) {
		return o.doc[o.pos]
	}
	return 0
}

// space skips JSON white space (not the wider set of unicode.IsSpace).
func (o *Object) space() {
	for o.pos < len(o.doc) {
		switch o.doc[o.pos] {
		case ' ', '\t', '\n', '\r':
			o.pos++
		default:
			return
		}
	}
}

// plainKey reads a key of printable ASCII without escapes. Anything else is either invalid
// or decoded and matched by encoding/json with rules (escapes, U+FFFD for invalid UTF-8,
// Unicode case folding) that this package does not repeat.
func (o *Object) plainKey() (key []byte, plain bool) {
	if !o.next('"') {
		return nil, false
	}
	start := o.pos
	for o.pos < len(o.doc) {
		c := o.doc[o.pos]
		o.pos++
		switch {
		case c == '"':
			return o.doc[start : o.pos-1], true
		case c < 0x20 || c == '\\' || c >= 0x7f:
			return nil, false
		}
	}
	return nil, false
}

// value skips one valid JSON value at nesting depth (of a container it would open).
func (o *Object) value(depth int) bool {
	switch c := o.peek(); {
	case c == '"':
		return o.skipString()
	case c == '{' || c == '[':
		if depth > MaxDepth {
			return false
		}
		return o.container(depth)
	case c == '-' || '0' <= c && c <= '9':
		return o.number()
	case c == 't':
		return o.literal("true")
	case c == 'f':
		return o.literal("false")
	case c == 'n':
		return o.literal("null")
	}
	return false
}

// container skips an object or an array whose opening bracket is at o.pos.
func (o *Object) container(depth int) bool {
	isObject := o.doc[o.pos] == '{'
	closing := byte(']')
	if isObject {
		closing = '}'
	}
	o.pos++
	o.space()
	if o.next(closing) {
		return true
	}
	for {
		if isObject {
			if o.peek() != '"' || !o.skipString() {
				return false
			}
			o.space()
			if !o.next(':') {
				return false
			}
			o.space()
		}
		if !o.value(depth + 1) {
			return false
		}
		o.space()
		if o.next(closing) {
			return true
		}
		if !o.next(',') {
			return false
		}
		o.space()
	}
}

// skipString skips a valid string at o.pos. Its bytes may be anything but control
// characters: encoding/json accepts invalid UTF-8 in strings (and replaces it when
// decoding). Strings are most of a beacon, so their plain bytes are skipped eight at a time.
func (o *Object) skipString() bool {
	doc := o.doc
	i := o.pos + 1 // after the opening quote
	for {
		for i+8 <= len(doc) && !hasStringSpecial(binary.LittleEndian.Uint64(doc[i:])) {
			i += 8
		}
		for i < len(doc) && doc[i] >= 0x20 && doc[i] != '"' && doc[i] != '\\' {
			i++
		}
		if i >= len(doc) {
			return false
		}
		switch doc[i] {
		case '"':
			o.pos = i + 1
			return true
		case '\\':
			n := escapeLen(doc[i:])
			if n == 0 {
				return false
			}
			i += n
		default: // a control character
			return false
		}
	}
}

// Byte masks for hasStringSpecial.
const (
	eachByte  = 0x0101010101010101
	highBits  = 0x8080808080808080
	quotes    = '"' * eachByte
	backslash = '\\' * eachByte
	spaces    = ' ' * eachByte
)

// hasStringSpecial reports whether any of the eight bytes of w ends a run of plain string
// bytes: a quote, a backslash or a control character. Each term is the classic test for a
// zero byte ((x - 0x01…) &^ x & 0x80…), or for a byte below 0x20, which is exact for the
// word as a whole.
func hasStringSpecial(w uint64) bool {
	q := w ^ quotes
	b := w ^ backslash
	return ((q-eachByte)&^q|(b-eachByte)&^b|(w-spaces)&^w)&highBits != 0
}

// escapeLen returns the length of the escape sequence that starts esc (with its
// backslash), or 0 when it is not a valid one.
func escapeLen(esc []byte) int {
	if len(esc) < 2 {
		return 0
	}
	switch esc[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(esc) < 6 {
			return 0
		}
		for _, h := range esc[2:6] {
			if !isHex(h) {
				return 0
			}
		}
		return 6
	}
	return 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (o *Object) literal(word string) bool {
	if len(o.doc)-o.pos < len(word) || string(o.doc[o.pos:o.pos+len(word)]) != word {
		return false
	}
	o.pos += len(word)
	return true
}

// number skips a number of the JSON grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (o *Object) number() bool {
	o.next('-')
	switch c := o.peek(); {
	case c == '0':
		o.pos++
	case '1' <= c && c <= '9':
		o.digits()
	default:
		return false
	}
	if o.next('.') && !o.digits() {
		return false
	}
	if c := o.peek(); c == 'e' || c == 'E' {
		o.pos++
		if c := o.peek(); c == '+' || c == '-' {
			o.pos++
		}
		if !o.digits() {
			return false
		}
	}
	return true
}

// digits skips one or more digits.
func (o *Object) digits() bool {
	start := o.pos
	for o.pos < len(o.doc) && '0' <= o.doc[o.pos] && o.doc[o.pos] <= '9' {
		o.pos++
	}
	return o.pos > start
}

// EqualFoldASCII reports whether key equals name when ASCII letters are compared without
// regard to case, which is how encoding/json matches a plain key to a field whose name is
// ASCII. name must be lower case.
func EqualFoldASCII(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i, c := range key {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// PlainString returns the contents of a JSON string value from Next when encoding/json
// would decode it to exactly those bytes: no escapes and valid UTF-8. ok is false for
// other strings and for values of other types.
func PlainString(value []byte) (contents []byte, ok bool) {
	if len(value) < 2 || value[0] != '"' {
		return nil, false
	}
	contents = value[1 : len(value)-1]
	if bytes.IndexByte(contents, '\\') >= 0 || !utf8.Valid(contents) {
		return nil, false
	}
	return contents, true
}
