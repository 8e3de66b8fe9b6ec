// Package geo turns a client IP address into a country, region and city with a database in
// the MaxMind DB format (.mmdb) that the operator supplies: GeoLite2 / GeoIP2 City or
// Country from MaxMind, or DB-IP's City / Country (Lite or commercial) databases.
//
// The values are what the dashboard and the query API show for visit:country, visit:region
// and visit:city:
//
//   - country: the ISO 3166-1 alpha-2 code in upper case ("DE"); "" when unknown.
//   - region: the English name of the largest subdivision ("England", "Bavaria",
//     "California"); "" when unknown or the database is a Country one. The name, not the
//     ISO 3166-2 code, because DB-IP's databases carry names only, and one database type
//     must not give another kind of value than the other.
//   - city: the English city name ("Munich"); "" when unknown or the database is a
//     Country one.
//
// The file is memory-mapped at Open, so a city database of 60–130 MB does not count
// against the Go heap limit (--memory-limit) and its pages are shared with the page cache.
// There is no reload: a new database takes effect on restart. Replace the file by renaming a
// new one over it (as geoipupdate does); a file overwritten in place makes lookups fail with
// an error until the restart, never crash the process.
package geo

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Flag is the setting that names the database file; errors name it so the operator knows
// what to fix.
const Flag = "geoip.db"

// MaxFileBytes bounds the database file. The largest city databases are a few hundred MB.
const MaxFileBytes = 4 << 30

// MaxNameLen bounds a region or city name, in bytes; longer names are cut at a character
// boundary.
const MaxNameLen = 120

// Supported describes the database types Open accepts, for error messages and docs.
const Supported = "GeoLite2-City, GeoLite2-Country, GeoIP2-City, GeoIP2-Country, GeoIP2-Enterprise, " +
	"DBIP-City-Lite, DBIP-Country-Lite and DB-IP's commercial Location and Country databases"

// Info describes an open database.
type Info struct {
	Path      string
	Type      string    // database_type of the metadata, e.g. "GeoLite2-City"
	Built     time.Time // build time from the metadata, UTC
	IPVersion int       // 4: IPv4 only; 6: IPv4 and IPv6
	HasCity   bool      // a City (or Enterprise / Location) database; Country ones give no region or city
}

// DB is an open database. Its methods are safe for concurrent use. A nil *DB knows no
// address: every lookup answers "unknown" (empty values).
type DB struct {
	r    *maxminddb.Reader
	info Info
}

// Open reads the database at path. Its errors name the setting, say what is wrong with the
// file and how to get a suitable one.
func Open(path string) (*DB, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %q does not exist; give the path of a City or Country database in MaxMind DB format (.mmdb), e.g. GeoLite2-City.mmdb (free from MaxMind) or dbip-city-lite.mmdb (free from DB-IP), or leave %s empty to run without locations", Flag, path, Flag)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s: %q cannot be read (permission denied); let the user running Glimpse read it", Flag, path)
	case err != nil:
		return nil, fmt.Errorf("%s: cannot read %q: %w", Flag, path, err)
	case st.IsDir():
		return nil, fmt.Errorf("%s: %q is a directory; give the path of the .mmdb file itself, e.g. %s/GeoLite2-City.mmdb", Flag, path, strings.TrimRight(path, "/"))
	case st.Size() > MaxFileBytes:
		return nil, fmt.Errorf("%s: %q is %d bytes, larger than any supported database (limit %d bytes); supported are %s", Flag, path, st.Size(), int64(MaxFileBytes), Supported)
	}
	return open(path)
}

func open(path string) (db *DB, err error) {
	notMMDB := func(why any) error {
		return fmt.Errorf("%s: %q is not a readable MaxMind DB (.mmdb) file (%v); download the database again, and make sure it is the .mmdb file, not the .tar.gz or .csv edition; supported are %s", Flag, path, why, Supported)
	}
	// The reader checks the file, but a damaged one, or one truncated while it is mapped,
	// must never take the process down.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, notMMDB(p)
		}
	}()
	r, err := maxminddb.Open(path)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s: %q cannot be read (permission denied); let the user running Glimpse read it", Flag, path)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %q disappeared while it was opened; give the path of the .mmdb file", Flag, path)
	case err != nil:
		return nil, notMMDB(err)
	}
	m := r.Metadata
	kind := strings.ToLower(m.DatabaseType)
	if !strings.Contains(kind, "city") && !strings.Contains(kind, "country") &&
		!strings.Contains(kind, "enterprise") && !strings.Contains(kind, "location") {
		return nil, fmt.Errorf("%s: %q is a %q database, which holds no locations; supported are %s", Flag, path, m.DatabaseType, Supported)
	}
	if m.IPVersion != 4 && m.IPVersion != 6 {
		return nil, notMMDB(fmt.Sprintf("unknown ip_version %d", m.IPVersion))
	}
	return &DB{r: r, info: Info{
		Path:      path,
		Type:      m.DatabaseType,
		Built:     m.BuildTime().UTC(),
		IPVersion: int(m.IPVersion),
		HasCity:   !strings.Contains(kind, "country"),
	}}, nil
}

// Info describes the database; the zero Info for a nil DB.
func (db *DB) Info() Info {
	if db == nil {
		return Info{}
	}
	return db.info
}

// Location is where an address is, as far as the database knows; "" is unknown.
type Location struct {
	Country string // ISO 3166-1 alpha-2, upper case
	Region  string // English name of the largest subdivision
	City    string // English name
}

// record holds the fields Glimpse reads. MaxMind and DB-IP share this layout; DB-IP's
// subdivisions have names but no iso_code, which is why region is the name.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		Names englishName `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	City struct {
		Names englishName `maxminddb:"names"`
	} `maxminddb:"city"`
}

type englishName struct {
	En string `maxminddb:"en"`
}

// Lookup returns the country, region and city of a; empty strings for what is unknown,
// including every address of a nil DB, private and invalid addresses, and addresses whose
// record cannot be read. It never panics.
func (db *DB) Lookup(a netip.Addr) (country, region, city string) {
	loc, _, _ := db.Locate(a)
	return loc.Country, loc.Region, loc.City
}

// Locate is Lookup with the outcome: found is false when the database has no record for a
// (or a is invalid, or db is nil); err is set when the record could not be read, which
// means the database is damaged. An IPv4-mapped IPv6 address is looked up as IPv4.
func (db *DB) Locate(a netip.Addr) (loc Location, found bool, err error) {
	if db == nil || !a.IsValid() {
		return Location{}, false, nil
	}
	a = a.Unmap().WithZone("")
	if a.Is6() && db.info.IPVersion == 4 {
		return Location{}, false, nil // an IPv4-only database knows no IPv6 address
	}
	// A file overwritten in place under the memory map faults (SIGBUS) instead of failing
	// a read; with SetPanicOnFault that is a panic, recovered here as an error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			loc, found, err = Location{}, false, fmt.Errorf("geo: the database could not be read (was the file overwritten in place? rename a new file over it and restart): %v", p)
		}
	}()
	res := db.r.Lookup(a)
	if err := res.Err(); err != nil {
		return Location{}, false, fmt.Errorf("geo: %w", err)
	}
	if !res.Found() {
		return Location{}, false, nil
	}
	var rec record
	if err := res.Decode(&rec); err != nil {
		return Location{}, false, fmt.Errorf("geo: %w", err)
	}
	loc = Location{Country: countryCode(rec.Country.ISOCode), City: cleanName(rec.City.Names.En)}
	if len(rec.Subdivisions) > 0 {
		loc.Region = cleanName(rec.Subdivisions[0].Names.En)
	}
	return loc, true, nil
}

// countryCode returns s in upper case if it is two ASCII letters, else "". "ZZ" (unknown
// in ISO 3166's user-assigned range, used by some databases) is unknown too.
func countryCode(s string) string {
	if len(s) != 2 {
		return ""
	}
	up := strings.ToUpper(s)
	for i := 0; i < 2; i++ {
		if up[i] < 'A' || up[i] > 'Z' {
			return ""
		}
	}
	if up == "ZZ" {
		return ""
	}
	return up
}

// cleanName makes a database name safe to store and show: valid UTF-8, no control
// characters, trimmed, at most MaxNameLen bytes.
func cleanName(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= MaxNameLen {
		return s
	}
	cut := MaxNameLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimSpace(s[:cut])
}
