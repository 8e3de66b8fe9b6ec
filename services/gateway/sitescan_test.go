package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// siteFieldsByReflection is what beaconSiteFields must always agree with.
func siteFieldsByReflection(body []byte) (d, domain string) {
	var v struct {
		D      string `json:"d"`
		Domain string `json:"domain"`
	}
	_ = json.Unmarshal(body, &v)
	return v.D, v.Domain
}

// siteFieldBodies are bodies the scanner reads itself and bodies it leaves to
// encoding/json; both must give encoding/json's answer.
var siteFieldBodies = []string{
	`{"n":"pageview","u":"https://example.com/","d":"example.com","r":null,"w":1280,"p":{"plan":"pro","n":[1,2.5e3,-0.1,true,false,null]}}`,
	`{"domain":"a.com"}`, `{"D":"upper.com"}`, `{"DoMaIn":"mixed.com","d":""}`,
	`{"d":"first.com","d":"last.com"}`, `{"d":"kept.com","d":null}`, `{"d":"kept.com","d":5}`,
	`{"d":"kept.com","d":{"x":1}}`, `{"d":["a.com"]}`, `{"d":true}`, `{}`, ` { } `, `{"d":"a.com"} x`,
	`{"d":"a.com",}`, `{"d" "a.com"}`, `{"d":"a.com"`, `{"d":"a\u002ecom"}`, `{"d":"a\\b.com"}`,
	`{"d":"caf` + "\xc3\xa9" + `.com"}`, `{"d":"bad` + "\xff" + `.com"}`, `{"d":"tab` + "\t" + `.com"}`,
	`{"x":"esc \" \\ \/ \b \f \n \r \t \u00e9","d":"a.com"}`, `{"x":"\x","d":"a.com"}`, `{"x":"\u12g4","d":"a.com"}`,
	`{"n":01,"d":"a.com"}`, `{"n":-,"d":"a.com"}`, `{"n":1.,"d":"a.com"}`, `{"n":1e,"d":"a.com"}`, `{"n":-0.5E+7,"d":"a.com"}`,
	`{"n":tru,"d":"a.com"}`, `{"n":nulll,"d":"a.com"}`, `{"d\u0000":"x.com"}`, `{"domaın":"dotless.com"}`,
	`{"ſ":"long-s.com","d":"a.com"}`, `{"p":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `,"d":"deep.com"}`,
	`{"p":` + strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat(`}`, 20) + `,"d":"nested.com"}`,
	`{"p":[1,2,],"d":"a.com"}`, `{"p":{"a"},"d":"a.com"}`, `{"p":{1:2},"d":"a.com"}`, "{\"d\":\"a.com\"}\n\r\t ",
	`{"d":"` + strings.Repeat("a", 300) + `"}`, `[{"d":"a.com"}]`, `"d"`, `{"domain":"b.com","d":"a.com"}`,
}

func TestBeaconSiteFieldsAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range siteFieldBodies {
		d, domain := beaconSiteFields([]byte(body))
		wantD, wantDomain := siteFieldsByReflection([]byte(body))
		if d != wantD || domain != wantDomain {
			t.Errorf("beaconSiteFields(%.80q) = %q, %q; encoding/json says %q, %q", body, d, domain, wantD, wantDomain)
		}
	}
}

func TestScanSiteFieldsReadsCommonBeaconsItself(t *testing.T) {
	for _, body := range []string{
		`{"n":"pageview","u":"https://example.com/pricing?utm_source=news","d":"example.com","r":"https://google.com/","p":{"plan":"pro"}}`,
		`{"n":"signup","d":"a.com,b.com","m":{"amount":"9.99","currency":"EUR"},"i":true,"w":1280}`,
		`{"n":"pageview","u":"https://example.com/","domain":"example.com","r":null}`,
	} {
		if _, _, ok := scanSiteFields([]byte(body)); !ok {
			t.Errorf("the scanner left %.80q to encoding/json; common beacons must not pay for reflection", body)
		}
	}
}

// FuzzBeaconSiteFields checks beaconSiteFields against encoding/json on any body:
//
//	go test -run '^$' -fuzz FuzzBeaconSiteFields -fuzztime 30s ./services/gateway/
func FuzzBeaconSiteFields(f *testing.F) {
	for _, body := range siteFieldBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, domain := beaconSiteFields(body)
		wantD, wantDomain := siteFieldsByReflection(body)
		if d != wantD || domain != wantDomain {
			t.Errorf("beaconSiteFields(%q) = %q, %q; encoding/json says %q, %q", body, d, domain, wantD, wantDomain)
		}
	})
}

// BenchmarkBeaconSiteFields is the per-beacon cost of finding the sites for the per-site limit.
func BenchmarkBeaconSiteFields(b *testing.B) {
	body := []byte(`{"n":"pageview","u":"https://www.example.com/blog/going-cookieless?utm_source=newsletter&utm_medium=email&utm_campaign=spring","d":"example.com","r":"https://www.google.com/","p":{"author":"ann","words":1200},"w":1440}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if d, _ := beaconSiteFields(body); d != "example.com" {
			b.Fatalf("d = %q", d)
		}
	}
}
