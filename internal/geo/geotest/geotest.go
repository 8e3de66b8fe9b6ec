// Package geotest writes small MaxMind DB (.mmdb) files for tests, in the record layouts
// of MaxMind's and DB-IP's City and Country databases. Only tests import it.
package geotest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Network is one network of a test database and where it is. An empty Region or City
// leaves that part out of the record; an empty RegionCode writes the subdivision the way
// DB-IP does, with names only.
type Network struct {
	CIDR       string
	Country    string // ISO code as stored
	Region     string // English subdivision name
	RegionCode string // ISO 3166-2 part after the country ("ENG"), MaxMind layout
	City       string // English city name
}

// Addresses inside Networks, and what a lookup must answer for them.
const (
	LondonIPv4    = "81.2.69.142"   // GB, England, London: MaxMind City layout
	BerlinIPv6    = "2a02:8100::42" // DE, Berlin, Berlin: IPv6, MaxMind City layout
	BrisbaneIPv4  = "1.128.0.7"     // AU, Queensland, Brisbane: DB-IP layout (no ISO subdivision code)
	SwedenIPv4    = "89.160.20.112" // SE only: a Country-shaped record in the City database
	UnlistedIPv4  = "8.8.8.8"       // in no network
	UnlistedIPv6  = "2606:4700::1"  // in no network
	PrivateIPv4   = "192.168.1.10"  // reserved: never in a database
	LoopbackIPv6  = "::1"           // reserved
	BuildTimeUnix = 1_767_225_600   // 2026-01-01T00:00:00Z, the build time of every test database
)

// Networks are the networks of CityDB.
var Networks = []Network{
	{CIDR: "81.2.69.0/24", Country: "GB", Region: "England", RegionCode: "ENG", City: "London"},
	{CIDR: "2a02:8100::/32", Country: "DE", Region: "Berlin", RegionCode: "BE", City: "Berlin"},
	{CIDR: "1.128.0.0/11", Country: "AU", Region: "Queensland", City: "Brisbane"},
	{CIDR: "89.160.20.0/24", Country: "SE"},
}

// CityDB writes a GeoLite2-City-typed database of Networks into a temporary directory of t
// and returns its path.
func CityDB(t testing.TB) string {
	t.Helper()
	return Write(t, "GeoLite2-City", Networks)
}

// CountryDB writes a GeoLite2-Country-typed database of Networks, reduced to their
// countries as in a real Country database, and returns its path.
func CountryDB(t testing.TB) string {
	t.Helper()
	nets := make([]Network, len(Networks))
	for i, n := range Networks {
		nets[i] = Network{CIDR: n.CIDR, Country: n.Country}
	}
	return Write(t, "GeoLite2-Country", nets)
}

// Write builds an IPv6 (IPv4-including) database of type dbType holding nets and returns
// the path of the file, in a temporary directory of t.
func Write(t testing.TB, dbType string, nets []Network) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: dbType,
		Languages:    []string{"de", "en"},
		Description:  map[string]string{"en": "Glimpse test database"},
		BuildEpoch:   BuildTimeUnix,
		IPVersion:    6,
		RecordSize:   24,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		_, network, err := net.ParseCIDR(n.CIDR)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(network, record(n)); err != nil {
			t.Fatalf("insert %s: %v", n.CIDR, err)
		}
	}
	path := filepath.Join(t.TempDir(), dbType+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// BuildTime is the build time of every test database.
func BuildTime() time.Time { return time.Unix(BuildTimeUnix, 0).UTC() }

// names is a "names" map with a German name beside the English one, so a reader that
// picks the wrong language is caught.
func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en), "de": mmdbtype.String(en + " (de)")}
}

func record(n Network) mmdbtype.Map {
	rec := mmdbtype.Map{
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU"), "names": names("Europe")},
		"country":   mmdbtype.Map{"iso_code": mmdbtype.String(n.Country), "names": names(n.Country + " country")},
		// registered_country differs on purpose: the country is where the address is used
		"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("US"), "names": names("United States")},
	}
	if n.Region != "" {
		sub := mmdbtype.Map{"names": names(n.Region)}
		if n.RegionCode != "" {
			sub["iso_code"] = mmdbtype.String(n.RegionCode)
		}
		// a second, smaller subdivision, as MaxMind has for parts of England
		rec["subdivisions"] = mmdbtype.Slice{sub, mmdbtype.Map{"names": names(n.Region + " district")}}
	}
	if n.City != "" {
		rec["city"] = mmdbtype.Map{"geoname_id": mmdbtype.Uint32(1), "names": names(n.City)}
		rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(1.5), "longitude": mmdbtype.Float64(2.5)}
	}
	return rec
}
