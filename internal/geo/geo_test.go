package geo_test

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/glimpse-analytics/glimpse/internal/geo"
	"github.com/glimpse-analytics/glimpse/internal/geo/geotest"
)

func open(t *testing.T, path string) *geo.DB {
	t.Helper()
	db, err := geo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestLookupCityDatabase(t *testing.T) {
	db := open(t, geotest.CityDB(t))
	info := db.Info()
	if info.Type != "GeoLite2-City" || !info.HasCity || info.IPVersion != 6 || !info.Built.Equal(geotest.BuildTime()) {
		t.Fatalf("Info() = %+v", info)
	}
	cases := []struct {
		ip                    string
		country, region, city string
	}{
		{geotest.LondonIPv4, "GB", "England", "London"},
		{"::ffff:" + geotest.LondonIPv4, "GB", "England", "London"}, // IPv4-mapped IPv6
		{geotest.BerlinIPv6, "DE", "Berlin", "Berlin"},
		{geotest.BrisbaneIPv4, "AU", "Queensland", "Brisbane"}, // DB-IP layout: names only
		{geotest.SwedenIPv4, "SE", "", ""},                     // Country-shaped record
		{geotest.UnlistedIPv4, "", "", ""},
		{geotest.UnlistedIPv6, "", "", ""},
		{geotest.PrivateIPv4, "", "", ""},
		{geotest.LoopbackIPv6, "", "", ""},
		{"fe80::1%eth0", "", "", ""},
	}
	for _, c := range cases {
		country, region, city := db.Lookup(netip.MustParseAddr(c.ip))
		if country != c.country || region != c.region || city != c.city {
			t.Errorf("Lookup(%s) = %q, %q, %q; want %q, %q, %q", c.ip, country, region, city, c.country, c.region, c.city)
		}
	}
}

func TestLocateOutcome(t *testing.T) {
	db := open(t, geotest.CityDB(t))
	if loc, found, err := db.Locate(netip.MustParseAddr(geotest.LondonIPv4)); !found || err != nil || loc.City != "London" {
		t.Errorf("London: %+v found=%v err=%v", loc, found, err)
	}
	for _, ip := range []string{geotest.UnlistedIPv4, geotest.PrivateIPv4, geotest.LoopbackIPv6} {
		if loc, found, err := db.Locate(netip.MustParseAddr(ip)); found || err != nil || loc != (geo.Location{}) {
			t.Errorf("%s: %+v found=%v err=%v, want not found", ip, loc, found, err)
		}
	}
	if _, found, err := db.Locate(netip.Addr{}); found || err != nil {
		t.Errorf("invalid address: found=%v err=%v", found, err)
	}
}

func TestLookupCountryDatabase(t *testing.T) {
	db := open(t, geotest.CountryDB(t))
	if info := db.Info(); info.Type != "GeoLite2-Country" || info.HasCity {
		t.Fatalf("Info() = %+v", info)
	}
	for ip, want := range map[string]string{geotest.LondonIPv4: "GB", geotest.BerlinIPv6: "DE", geotest.SwedenIPv4: "SE", geotest.UnlistedIPv4: ""} {
		country, region, city := db.Lookup(netip.MustParseAddr(ip))
		if country != want || region != "" || city != "" {
			t.Errorf("Lookup(%s) = %q, %q, %q; want %q and no region or city", ip, country, region, city, want)
		}
	}
}

func TestDBIPTypesAreAccepted(t *testing.T) {
	for _, typ := range []string{"DBIP-City-Lite", "DBIP-Country-Lite", "DBIP-Location (compat=City)", "GeoIP2-Enterprise"} {
		db, err := geo.Open(geotest.Write(t, typ, geotest.Networks))
		if err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		if c, _, _ := db.Lookup(netip.MustParseAddr(geotest.BrisbaneIPv4)); c != "AU" {
			t.Errorf("%s: country %q, want AU", typ, c)
		}
	}
}

func TestNilDBIsUnknown(t *testing.T) {
	var db *geo.DB
	if c, r, ci := db.Lookup(netip.MustParseAddr(geotest.LondonIPv4)); c != "" || r != "" || ci != "" {
		t.Fatalf("nil DB: %q %q %q", c, r, ci)
	}
	if db.Info() != (geo.Info{}) {
		t.Fatal("nil DB has an Info")
	}
}

func TestRecordValuesAreCleaned(t *testing.T) {
	long := strings.Repeat("é", geo.MaxNameLen) // 2 bytes each: twice the limit
	path := geotest.Write(t, "GeoLite2-City", []geotest.Network{
		{CIDR: "81.2.69.0/24", Country: "gb", Region: "Eng\x00land\n", City: long},
		{CIDR: "89.160.20.0/24", Country: "ZZ"},
		{CIDR: "1.128.0.0/11", Country: "A1"},
	})
	db := open(t, path)
	country, region, city := db.Lookup(netip.MustParseAddr(geotest.LondonIPv4))
	if country != "GB" || region != "England" {
		t.Errorf("country %q region %q, want GB England", country, region)
	}
	if len(city) > geo.MaxNameLen || len(city) < geo.MaxNameLen-1 || !strings.HasPrefix(long, city) {
		t.Errorf("city of %d bytes not cut at a character boundary within %d bytes: %q", len(city), geo.MaxNameLen, city)
	}
	for _, ip := range []string{geotest.SwedenIPv4, geotest.BrisbaneIPv4} {
		if c, _, _ := db.Lookup(netip.MustParseAddr(ip)); c != "" {
			t.Errorf("%s: country %q, want unknown", ip, c)
		}
	}
}

func TestOpenErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("this is not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// a real database cut in half: the metadata at its end is gone
	good, err := os.ReadFile(geotest.CityDB(t))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.mmdb")
	if err := os.WriteFile(truncated, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	asn := geotest.Write(t, "GeoLite2-ASN", nil)

	cases := []struct {
		path string
		want []string
	}{
		{filepath.Join(dir, "missing.mmdb"), []string{"geoip.db", "does not exist", "GeoLite2-City.mmdb"}},
		{dir, []string{"geoip.db", "is a directory"}},
		{garbage, []string{"geoip.db", "not a readable MaxMind DB", "GeoLite2-City", "DBIP-City-Lite"}},
		{empty, []string{"geoip.db", "not a readable MaxMind DB"}},
		{truncated, []string{"geoip.db", "not a readable MaxMind DB"}},
		{asn, []string{"geoip.db", `"GeoLite2-ASN"`, "holds no locations", "GeoLite2-Country"}},
	}
	for _, c := range cases {
		db, err := geo.Open(c.path)
		if err == nil {
			t.Errorf("Open(%s) succeeded: %+v", filepath.Base(c.path), db.Info())
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Open(%s): error %q lacks %q", filepath.Base(c.path), err, w)
			}
		}
	}

}

// TestDamagedRecords opens a database whose metadata and search tree are intact but whose
// records are overwritten: Open cannot tell, so every lookup must report the error instead
// of panicking or inventing a place.
func TestDamagedRecords(t *testing.T) {
	good, err := os.ReadFile(geotest.CityDB(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := maxminddb.OpenBytes(good)
	if err != nil {
		t.Fatal(err)
	}
	dataStart := int(r.Metadata.NodeCount*r.Metadata.RecordSize/4) + 16 // tree, then 16 zero bytes
	metaStart := bytes.LastIndex(good, []byte("\xab\xcd\xefMaxMind.com"))
	if metaStart <= dataStart {
		t.Fatalf("cannot find the data section (%d..%d)", dataStart, metaStart)
	}
	damaged := append([]byte(nil), good...)
	for i := dataStart; i < metaStart; i++ {
		damaged[i] = 0xff
	}
	path := filepath.Join(t.TempDir(), "damaged.mmdb")
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	db := open(t, path)
	for _, ip := range []string{geotest.LondonIPv4, geotest.BerlinIPv6, geotest.BrisbaneIPv4} {
		loc, found, err := db.Locate(netip.MustParseAddr(ip))
		if err == nil || found || loc != (geo.Location{}) {
			t.Errorf("%s in a damaged database: %+v found=%v err=%v; want an error", ip, loc, found, err)
		}
		if c, r, ci := db.Lookup(netip.MustParseAddr(ip)); c != "" || r != "" || ci != "" {
			t.Errorf("Lookup(%s) in a damaged database = %q %q %q; want unknown", ip, c, r, ci)
		}
	}
	if _, found, err := db.Locate(netip.MustParseAddr(geotest.UnlistedIPv4)); found || err != nil {
		t.Errorf("an address in no network: found=%v err=%v", found, err)
	}
}

// TestFileOverwrittenInPlace truncates the mapped file under an open DB, as `cp new.mmdb
// GeoLite2-City.mmdb` would: lookups must fail with an error, not crash the process.
func TestFileOverwrittenInPlace(t *testing.T) {
	path := geotest.CityDB(t)
	db := open(t, path)
	if c, _, _ := db.Lookup(netip.MustParseAddr(geotest.LondonIPv4)); c != "GB" {
		t.Fatalf("before: country %q", c)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{geotest.LondonIPv4, geotest.BerlinIPv6} {
		loc, found, err := db.Locate(netip.MustParseAddr(ip))
		if err == nil || found || loc != (geo.Location{}) {
			t.Errorf("%s after truncation: %+v found=%v err=%v; want an error", ip, loc, found, err)
		}
		t.Logf("%s after truncation: %v", ip, err)
	}
}

func TestOpenUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := geotest.CityDB(t)
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err := geo.Open(path)
	if err == nil || !strings.Contains(err.Error(), "geoip.db") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Open of an unreadable file: %v", err)
	}
}

func FuzzLookup(f *testing.F) {
	f.Add([]byte{81, 2, 69, 142})
	f.Add(netip.MustParseAddr(geotest.BerlinIPv6).AsSlice())
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	db, err := geo.Open(geotest.CityDB(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, _ := netip.AddrFromSlice(raw) // invalid for lengths other than 4 and 16
		_, _, _ = db.Lookup(a)
		if c, _, _ := db.Lookup(a); c != "" && (len(c) != 2 || strings.ToUpper(c) != c) {
			t.Fatalf("country %q is not an ISO code", c)
		}
	})
}
