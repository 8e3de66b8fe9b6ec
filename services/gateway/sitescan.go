package gateway

import (
	"encoding/json"

	"github.com/glimpse-analytics/glimpse/internal/jsonscan"
)

// beaconSiteFields returns the "d" and "domain" strings of a beacon body exactly as
// json.Unmarshal into struct{ D string `json:"d"`; Domain string `json:"domain"` } fills
// them: nothing for a body that is not valid JSON, keys matched without regard to case,
// the last of repeated keys winning, null and values of other types leaving a field as it
// was. Every beacon passes here for the per-site limit, and the reflection of
// json.Unmarshal was a large share of the gateway's own CPU per beacon: the common body
// (plain keys and site names without escapes) is read by scanSiteFields, anything else by
// json.Unmarshal.
func beaconSiteFields(body []byte) (d, domain string) {
	if d, domain, ok := scanSiteFields(body); ok {
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

// scanSiteFields picks the top-level "d" and "domain" strings out of a body with
// jsonscan. It gives up (ok false) on what it does not read itself (escaped keys or
// values, invalid UTF-8 in a site string, what jsonscan declines) and on invalid JSON, so
// that the answer then comes from encoding/json.
func scanSiteFields(body []byte) (d, domain string, ok bool) {
	var dRaw, domainRaw []byte // the last string of each; nil when none
	o := jsonscan.NewObject(body)
	for key, value, more := o.Next(); more; key, value, more = o.Next() {
		var field *[]byte
		switch {
		case jsonscan.EqualFoldASCII(key, "d"):
			field = &dRaw
		case jsonscan.EqualFoldASCII(key, "domain"):
			field = &domainRaw
		default:
			continue
		}
		if value[0] != '"' {
			continue // null or another type leaves the field as it was
		}
		s, plain := jsonscan.PlainString(value)
		if !plain {
			return "", "", false
		}
		*field = s
	}
	if !o.Complete() {
		return "", "", false
	}
	return string(dRaw), string(domainRaw), true
}
