package event

import (
	"errors"
	"testing"
)

// A newer collector's version stops the processor; bytes that are no version at all are an
// undecodable message, set aside on the dead-letter topic.
func TestDecodeTellsNewerVersionsFromGarbage(t *testing.T) {
	cases := []struct {
		name        string
		msg         []byte
		wantVersion bool
	}{
		{"next version", append([]byte{Version + 1}, `{"site":"a"}`...), true},
		{"highest future version", append([]byte{maxFutureVersion}, `{}`...), true},
		{"json without a version", []byte(`{"site":"a"}`), false},
		{"text", []byte("hello"), false},
		{"zero byte", []byte{0, 1, 2}, false},
		{"high byte", []byte{0xff, 0xfe}, false},
		{"right version, bad body", append([]byte{Version}, `{"site":`...), false},
	}
	for _, c := range cases {
		_, err := Decode(c.msg)
		if err == nil {
			t.Fatalf("%s: decoded without error", c.name)
		}
		if got := errors.Is(err, ErrUnknownVersion); got != c.wantVersion {
			t.Errorf("%s: errors.Is(%v, ErrUnknownVersion) = %v, want %v", c.name, err, got, c.wantVersion)
		}
	}
}
