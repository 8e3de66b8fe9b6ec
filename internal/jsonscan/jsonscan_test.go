package jsonscan

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// member is one key and value as Next returned them.
type member struct{ key, value string }

// members runs an Object over doc to the end.
func members(doc string) (got []member, complete bool) {
	o := NewObject([]byte(doc))
	for key, value, ok := o.Next(); ok; key, value, ok = o.Next() {
		got = append(got, member{string(key), string(value)})
	}
	// Once finished, an Object stays finished.
	if _, _, ok := o.Next(); ok {
		panic("Next returned a member after the end")
	}
	return got, o.Complete()
}

func TestObjectReadsValidDocuments(t *testing.T) {
	deep := strings.Repeat(`[`, MaxDepth-1) + strings.Repeat(`]`, MaxDepth-1)
	for _, tc := range []struct {
		doc  string
		want []member
	}{
		{`{}`, nil},
		{" \t\r\n{ \n}\r\n\t ", nil},
		{`{"n":"pageview"}`, []member{{"n", `"pageview"`}}},
		{`{ "a" : 1 , "b" :	[ 1 , 2 ] , "c" : { "x" : null } }`, []member{{"a", "1"}, {"b", "[ 1 , 2 ]"}, {"c", `{ "x" : null }`}}},
		{`{"a":null,"b":true,"c":false}`, []member{{"a", "null"}, {"b", "true"}, {"c", "false"}}},
		{`{"a":0,"b":-0,"c":12.50,"d":-1e9,"e":2E+3,"f":3e-07,"g":0.0}`, []member{{"a", "0"}, {"b", "-0"}, {"c", "12.50"}, {"d", "-1e9"}, {"e", "2E+3"}, {"f", "3e-07"}, {"g", "0.0"}}},
		{`{"d":"a.com","d":"b.com"}`, []member{{"d", `"a.com"`}, {"d", `"b.com"`}}},
		{`{"":1,"Mixed Case $_-":2}`, []member{{"", "1"}, {"Mixed Case $_-", "2"}}},
		{`{"s":"esc \" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00"}`, []member{{"s", `"esc \" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00"`}}},
		{`{"s":"caf` + "\xc3\xa9" + ` and bad ` + "\xff\xfe" + `"}`, []member{{"s", `"caf` + "\xc3\xa9" + ` and bad ` + "\xff\xfe" + `"`}}},
		{`{"o":{"\u0041":"keys of nested objects may have escapes","é":1}}`, []member{{"o", `{"\u0041":"keys of nested objects may have escapes","é":1}`}}},
		{`{"deep":` + deep + `}`, []member{{"deep", deep}}},
		{`{"a":[],"b":{},"c":[{}],"d":[[]]}`, []member{{"a", "[]"}, {"b", "{}"}, {"c", "[{}]"}, {"d", "[[]]"}}},
	} {
		got, complete := members(tc.doc)
		if !complete || !slices.Equal(got, tc.want) {
			t.Errorf("%.80q: members %q, complete %v; want %q, complete", tc.doc, got, complete, tc.want)
		}
		if !json.Valid([]byte(tc.doc)) {
			t.Errorf("%.80q: the test expects a valid document, but encoding/json rejects it", tc.doc)
		}
	}
}

func TestObjectDeclines(t *testing.T) {
	tooDeep := strings.Repeat(`[`, MaxDepth) + strings.Repeat(`]`, MaxDepth)
	for _, doc := range []string{
		// Valid JSON that is left to encoding/json.
		`{"\u0064":"escaped key"}`, `{"caf` + "\xc3\xa9" + `":1}`, `{"del` + "\x7f" + `":1}`, `{"bad` + "\xff" + `":1}`,
		`{"deep":` + tooDeep + `}`, `[]`, `"s"`, `1`, `null`,
		// Invalid JSON.
		``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{"a":1,}`, `{,"a":1}`, `{"a":1 "b":2}`, `{a:1}`, `{'a':1}`,
		`{"a":1}}`, `{"a":1} {}`, `{"a":1} x`, "{\"a\":1}\v", "{\"a\":1}\u00a0", `{"a":1`, `{"a":"x}`, `{"a":"x\"}`,
		`{"a":"\x"}`, `{"a":"\u12g4"}`, `{"a":"\u12"}`, `{"a":"\`, "{\"a\":\"tab\tinside\"}", "{\"a\":\"nl\ninside\"}",
		"{\"k\x01\":1}", `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":1e+}`, `{"a":+1}`, `{"a":0x1}`,
		`{"a":NaN}`, `{"a":tru}`, `{"a":nul}`, `{"a":nulll}`, `{"a":True}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`,
		`{"a":[}`, `{"a":{"b"}}`, `{"a":{1:2}}`, `{"a":{"b":1,}}`, `{"a":{"b":1]}`, `{"a":[1}`,
	} {
		got, complete := members(doc)
		if complete {
			t.Errorf("%.80q: complete with members %q; want declined", doc, got)
		}
	}
}

// TestObjectNeverPassesInvalidJSON checks the rule a caller relies on: Complete implies that
// encoding/json accepts the document, on every test document.
func TestObjectNeverPassesInvalidJSON(t *testing.T) {
	for _, doc := range seedDocuments() {
		if _, complete := members(doc); complete && !json.Valid([]byte(doc)) {
			t.Errorf("%.80q: complete, but encoding/json rejects it", doc)
		}
	}
}

func TestObjectValuesAreSlicesOfTheDocument(t *testing.T) {
	doc := []byte(`{"a": "x" , "b":[1]}`)
	o := NewObject(doc)
	_, value, ok := o.Next()
	if !ok || &value[0] != &doc[6] || len(value) != 3 {
		t.Fatalf("the first value %q is not the 3 bytes of the document from byte 6", value)
	}
}

func TestObjectDoesNotAllocate(t *testing.T) {
	doc := []byte(`{"n":"pageview","u":"https://example.com/a?b=c","d":"example.com","r":null,"p":{"plan":"pro","n":[1,2.5e3,true]},"w":1280}`)
	allocs := testing.AllocsPerRun(100, func() {
		o := NewObject(doc)
		n := 0
		for _, _, ok := o.Next(); ok; _, _, ok = o.Next() {
			n++
		}
		if n != 6 || !o.Complete() {
			t.Fatalf("%d members, complete %v", n, o.Complete())
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per document; want 0", allocs)
	}
}

func TestEqualFoldASCII(t *testing.T) {
	for _, tc := range []struct {
		key, name string
		want      bool
	}{
		{"domain", "domain", true}, {"DoMaIn", "domain", true}, {"DOMAIN", "domain", true}, {"$", "$", true},
		{"domai", "domain", false}, {"domainx", "domain", false}, {"d", "domain", false},
		{"\x04", "$", false}, {"@", "`", false}, {"[", "{", false}, {"_", "\x7f", false},
	} {
		if got := EqualFoldASCII([]byte(tc.key), tc.name); got != tc.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v; want %v", tc.key, tc.name, got, tc.want)
		}
	}
}

func TestPlainString(t *testing.T) {
	for _, tc := range []struct {
		value, want string
		ok          bool
	}{
		{`"example.com"`, "example.com", true}, {`""`, "", true}, {`"caf` + "\xc3\xa9" + `"`, "caf\xc3\xa9", true},
		{`"a\u002eb"`, "", false}, {`"a\\b"`, "", false}, {`"bad` + "\xff" + `"`, "", false},
		{`null`, "", false}, {`5`, "", false}, {`{"a":"b"}`, "", false},
	} {
		got, ok := PlainString([]byte(tc.value))
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("PlainString(%q) = %q, %v; want %q, %v", tc.value, got, ok, tc.want, tc.ok)
		}
	}
}

// captured keeps the bytes encoding/json hands to UnmarshalJSON.
type captured []byte

func (c *captured) UnmarshalJSON(b []byte) error {
	*c = b
	return nil
}

func seedDocuments() []string {
	return []string{
		`{"n":"pageview","u":"https://example.com/","d":"example.com","r":null,"p":{"plan":"pro"},"w":1280}`,
		`{ "a" : [ 1 , { "b" : "c" } ] , "a" : -0.5e-3 }`, `{"\u0061":1,"a":2}`, `{"a":"\ud800"}`, `{}`, `[]`,
		`{"a":1,}`, `{"a":01}`, `{"a":"` + "\x1f" + `"}`, `{"a":1} x`, `{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`,
	}
}

// FuzzObject checks an Object against encoding/json: when it completes, encoding/json
// accepts the document and hands each key's last value to UnmarshalJSON, byte for byte.
//
//	go test -run '^$' -fuzz '^FuzzObject$' -fuzztime 30s ./internal/jsonscan/
func FuzzObject(f *testing.F) {
	for _, doc := range seedDocuments() {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		last := map[string]string{}
		o := NewObject(doc)
		for key, value, ok := o.Next(); ok; key, value, ok = o.Next() {
			last[string(key)] = string(value)
		}
		if !o.Complete() {
			return
		}
		var want map[string]captured
		if err := json.Unmarshal(doc, &want); err != nil {
			t.Fatalf("complete, but encoding/json says: %v", err)
		}
		if len(want) != len(last) {
			t.Fatalf("members %q; encoding/json found %d keys", last, len(want))
		}
		for k, v := range want {
			if got, ok := last[k]; !ok || got != string(v) {
				t.Errorf("key %q: value %q; encoding/json says %q", k, got, v)
			}
		}
	})
}

// BenchmarkObject walks a typical beacon.
func BenchmarkObject(b *testing.B) {
	doc := []byte(`{"n":"pageview","u":"https://www.example.com/blog/going-cookieless?utm_source=newsletter&utm_medium=email&utm_campaign=spring","d":"example.com","r":"https://www.google.com/","p":{"author":"ann","words":1200},"w":1440}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		o := NewObject(doc)
		for _, _, ok := o.Next(); ok; _, _, ok = o.Next() {
		}
		if !o.Complete() {
			b.Fatal("declined")
		}
	}
}

// TestHasStringSpecial compares the eight-byte test with a byte-by-byte one, for every byte
// value at every position among fillers next to the boundaries, and for random words.
func TestHasStringSpecial(t *testing.T) {
	special := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' }
	reference := func(w uint64) bool {
		for k := 0; k < 8; k++ {
			if special(byte(w >> (8 * k))) {
				return true
			}
		}
		return false
	}
	for _, filler := range []byte{0x00, 0x1f, 0x20, 0x21, 0x23, 0x5b, 0x5d, 'a', 0x7f, 0x80, 0xa2, 0xdc, 0xff} {
		for pos := 0; pos < 8; pos++ {
			for v := 0; v < 256; v++ {
				w := uint64(filler) * eachByte
				w = w&^(0xff<<(8*pos)) | uint64(v)<<(8*pos)
				if got, want := hasStringSpecial(w), reference(w); got != want {
					t.Fatalf("hasStringSpecial(%#016x) = %v; want %v", w, got, want)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		w := rng.Uint64()
		if got, want := hasStringSpecial(w), reference(w); got != want {
			t.Fatalf("hasStringSpecial(%#016x) = %v; want %v", w, got, want)
		}
	}
}

// TestObjectStringsAcrossWords puts escapes, quotes and control characters at every offset
// of strings of many lengths (the scanner reads strings eight bytes at a time) and compares
// the verdict with encoding/json's, for the whole document and for every truncation of it.
func TestObjectStringsAcrossWords(t *testing.T) {
	for n := 0; n <= 20; n++ {
		for p := 0; p <= n; p++ {
			for _, insert := range []string{``, `\"`, `\\`, `\/`, `\u00e9`, `\u00g9`, `\q`, `\`, `"`, "\x01", "\x1f", "\x7f", "\xff", "é"} {
				doc := `{"k":"` + strings.Repeat("a", p) + insert + strings.Repeat("b", n-p) + `","z":1}`
				for end := len(doc); end >= len(doc)-12 && end > 0; end-- {
					_, complete := members(doc[:end])
					if valid := json.Valid([]byte(doc[:end])); complete != valid {
						t.Fatalf("%q: complete %v; encoding/json says valid %v", doc[:end], complete, valid)
					}
				}
			}
		}
	}
}
