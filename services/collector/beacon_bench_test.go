package collector

import "testing"

// BenchmarkDecodeBeacon is DecodeBeacon alone on a typical tracker body: the JSON scan, the
// string fields, the sites, the properties.
func BenchmarkDecodeBeacon(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeBeacon(body, 10); err != nil {
			b.Fatal(err)
		}
	}
}
