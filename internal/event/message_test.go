package event

import (
	"bytes"
	"strings"
	"testing"
)

func TestEncodeMessageMatchesKeyAndEncode(t *testing.T) {
	for _, e := range []*Event{fullEvent(), benchEvent(), {Name: PageviewName}} {
		key, value, err := EncodeMessage(e)
		if err != nil {
			t.Fatal(err)
		}
		wantValue, err := Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(key, e.Key()) {
			t.Errorf("key = %q, want %q", key, e.Key())
		}
		if !bytes.Equal(value, wantValue) {
			t.Errorf("value = %x, want %x", value, wantValue)
		}
	}
}

// The key and the value share memory; appending to the key must not change the value.
func TestEncodeMessageKeyAppendLeavesValue(t *testing.T) {
	e := fullEvent()
	key, value, err := EncodeMessage(e)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(value)
	_ = append(key, "overwrite"...)
	if !bytes.Equal(value, want) {
		t.Fatal("appending to the key overwrote the value")
	}
	back, err := Decode(value)
	if err != nil || back.Site != e.Site || back.VisitorID != e.VisitorID {
		t.Fatalf("Decode(value) = %+v, %v; want the event back", back, err)
	}
}

func TestEncodeMessageAllocatesOnce(t *testing.T) {
	e := benchEvent()
	if n := testing.AllocsPerRun(100, func() { _, _, _ = EncodeMessage(e) }); n != 1 {
		t.Fatalf("EncodeMessage allocates %v times; want 1 (key and value share one buffer)", n)
	}
}

func TestEncodeMessageRefusesWhatDecodeWouldRefuse(t *testing.T) {
	e := &Event{Site: "a", Path: strings.Repeat("x", MaxEncodedLen)}
	if _, _, err := EncodeMessage(e); err == nil || !strings.Contains(err.Error(), "more than the limit") {
		t.Fatalf("EncodeMessage of an event larger than MaxEncodedLen: err = %v, want the limit named", err)
	}
}

func BenchmarkEncodeMessage(b *testing.B) {
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := EncodeMessage(e); err != nil {
			b.Fatal(err)
		}
	}
}
