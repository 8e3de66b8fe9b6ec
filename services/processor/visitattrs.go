package processor

import (
	"encoding/binary"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// A visit takes fifteen attributes from its first event (source, UTM tags, device, place).
// An open visit keeps them packed into one string: each value as a uvarint length and its
// bytes, in visitAttrValues order. Kept as a full event they cost ~380 bytes and fifteen
// pointers per open visit, which at full speed made open visits the bulk of the heap and
// of the collector of garbage's marking; packed they cost one pointer and the bytes, and
// visits with the same attributes share one string through the partition's interner.

// numVisitAttrs is the number of visit attributes.
const numVisitAttrs = 15

// visitAttrValues are a visit's attributes in their packing and checkpoint order.
type visitAttrValues [numVisitAttrs]string

// visitAttrsOf returns the visit attributes of e.
func visitAttrsOf(e *event.Event) visitAttrValues {
	return visitAttrValues{
		e.Referrer, e.Source,
		e.UTMSource, e.UTMMedium, e.UTMCampaign, e.UTMTerm, e.UTMContent,
		e.Browser, e.BrowserVersion, e.OS, e.OSVersion, e.Device,
		e.Country, e.Region, e.City,
	}
}

// applyTo sets the visit attributes of e to v, so a stored event can be filtered by visit
// properties on its own.
func (v *visitAttrValues) applyTo(e *event.Event) {
	e.Referrer, e.Source = v[0], v[1]
	e.UTMSource, e.UTMMedium, e.UTMCampaign, e.UTMTerm, e.UTMContent = v[2], v[3], v[4], v[5], v[6]
	e.Browser, e.BrowserVersion, e.OS, e.OSVersion, e.Device = v[7], v[8], v[9], v[10], v[11]
	e.Country, e.Region, e.City = v[12], v[13], v[14]
}

// appendPacked appends the packed form of v to dst.
func (v *visitAttrValues) appendPacked(dst []byte) []byte {
	for _, s := range v {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// unpackVisitAttrs returns the values packed by appendPacked; they share packed's memory.
// packed is only ever made by appendPacked in this process, so its form is trusted.
func unpackVisitAttrs(packed string) (v visitAttrValues) {
	for i := range v {
		n, shift := 0, 0
		for {
			c := packed[0]
			packed = packed[1:]
			n |= int(c&0x7f) << shift
			if c < 0x80 {
				break
			}
			shift += 7
		}
		v[i], packed = packed[:n], packed[n:]
	}
	return v
}

// packVisitAttrs returns the packed, interned visit attributes v.
func (p *Partition) packVisitAttrs(v *visitAttrValues) string {
	p.attrBuf = v.appendPacked(p.attrBuf[:0])
	return p.intern.getBytes(p.attrBuf)
}
