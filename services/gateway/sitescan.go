package gateway

import "encoding/json"

// beaconSiteFields returns the "d" and "domain" strings of a beacon body exactly as
// json.Unmarshal into struct{ D string `json:"d"`; Domain string `json:"domain"` } fills
// them: nothing for a body that is not valid JSON, keys matched without regard to case,
// the last of repeated keys winning, null and values of other types leaving a field as it
// was. Every beacon passes here for the per-site limit, and the reflection of
// json.Unmarshal was a large share of the gateway's own CPU per beacon: the common body
// (ASCII keys and site names without escapes) is read by a strict scanner of its own,
// anything else by json.Unmarshal.
func beaconSiteFields(body []byte) (d, domain string) {
	s := siteScanner{b: body}
	if d, domain, ok := s.scan(); ok {
		return d, domain
	}
	var v struct {
		D      string `json:"d"`
		Domain string `json:"domain"`
	}
	// A type error in another field still fills these two; a syntax error leaves them
	// empty.
	_ = json.Unmarshal(body, &v)
	return v.D, v.Domain
}

// siteScanner validates a JSON document and picks out the top-level "d" and "domain"
// strings. It gives up (ok false) on what it does not read itself (escapes or non-ASCII
// bytes where they would need decoding, deep nesting) and on invalid JSON, so that the
// answer then comes from encoding/json.
type siteScanner struct {
	b []byte
	i int
}

// maxScanDepth bounds the nesting the scanner follows; deeper bodies go to encoding/json.
const maxScanDepth = 32

func (s *siteScanner) scan() (d, domain string, ok bool) {
	s.space()
	if !s.next('{') {
		return "", "", false
	}
	s.space()
	if s.next('}') {
		return "", "", s.end()
	}
	for {
		s.space()
		key, plain := s.str()
		if !plain {
			return "", "", false
		}
		s.space()
		if !s.next(':') {
			return "", "", false
		}
		s.space()
		field := 0 // 1: d, 2: domain
		switch {
		case len(key) == 1 && key[0]|0x20 == 'd':
			field = 1
		case len(key) == 6 && asciiFoldEqual(key, "domain"):
			field = 2
		}
		if field != 0 && s.peek() == '"' {
			v, plain := s.str()
			if !plain {
				return "", "", false
			}
			if field == 1 {
				d = string(v)
			} else {
				domain = string(v)
			}
		} else if !s.value(1) { // null or another type leaves the field as it was
			return "", "", false
		}
		s.space()
		if s.next('}') {
			return d, domain, s.end()
		}
		if !s.next(',') {
			return "", "", false
		}
	}
}

// asciiFoldEqual compares an ASCII key with a lower-case name, ignoring case.
func asciiFoldEqual(key []byte, name string) bool {
	for i := range key {
		if key[i]|0x20 != name[i] {
			return false
		}
	}
	return true
}

func (s *siteScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *siteScanner) next(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *siteScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// end reports whether only white space follows the document.
func (s *siteScanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// str reads a string of printable ASCII without escapes and returns its bytes; plain is
// false for anything else (which json.Unmarshal then reads, or rejects).
func (s *siteScanner) str() (v []byte, plain bool) {
	if !s.next('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// skipStr skips a valid string that may hold escapes and any bytes a JSON string may
// hold (encoding/json accepts invalid UTF-8 there too).
func (s *siteScanner) skipStr() bool {
	if !s.next('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if s.i >= len(s.b) {
				return false
			}
			e := s.b[s.i]
			s.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for k := 0; k < 4; k++ {
					if s.i >= len(s.b) || !isHex(s.b[s.i]) {
						return false
					}
					s.i++
				}
			default:
				return false
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// value skips one valid JSON value at nesting depth.
func (s *siteScanner) value(depth int) bool {
	switch c := s.peek(); {
	case c == '"':
		return s.skipStr()
	case c == '{' || c == '[':
		if depth >= maxScanDepth {
			return false
		}
		return s.container(depth + 1)
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

// container skips an object or an array.
func (s *siteScanner) container(depth int) bool {
	object := s.b[s.i] == '{'
	closing := byte(']')
	if object {
		closing = '}'
	}
	s.i++
	s.space()
	if s.next(closing) {
		return true
	}
	for {
		s.space()
		if object {
			if !s.skipStr() {
				return false
			}
			s.space()
			if !s.next(':') {
				return false
			}
			s.space()
		}
		if !s.value(depth) {
			return false
		}
		s.space()
		if s.next(closing) {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

func (s *siteScanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// number skips a number of the JSON grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *siteScanner) number() bool {
	s.next('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.next('.') && !s.digits() {
		return false
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits skips one or more digits.
func (s *siteScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
