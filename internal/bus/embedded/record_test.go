package embedded

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// Records without headers keep the layout written before headers existed, and records
// with headers read back whole.
func TestRecordLayout(t *testing.T) {
	key, value := []byte("site|visitor"), []byte("\x01{}")
	old := binary.BigEndian.AppendUint64(nil, 1700000000000)
	old = binary.AppendUvarint(old, uint64(len(key)))
	old = append(append(old, key...), value...)
	if got := appendRecord(nil, 1700000000000, key, value, nil); !bytes.Equal(got, old) {
		t.Fatalf("record without headers = %x, want the original layout %x", got, old)
	}
	headers := []bus.Header{{Key: bus.HeaderSourceOffset, Value: []byte("42")}, {Key: "empty"}}
	rec := appendRecord(nil, 1700000000000, key, value, headers)
	at, k, v, h, err := decodeRecord(rec)
	if err != nil || at != 1700000000000 || !bytes.Equal(k, key) || !bytes.Equal(v, value) || len(h) != 2 ||
		h[0].Key != bus.HeaderSourceOffset || string(h[0].Value) != "42" || h[1].Key != "empty" || len(h[1].Value) != 0 {
		t.Fatalf("decoded %d %q %q %v %v", at, k, v, h, err)
	}
	for cut := 9; cut < len(rec)-len(value); cut++ {
		if _, _, _, _, err := decodeRecord(rec[:cut]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded without error", cut, len(rec))
		}
	}
}
