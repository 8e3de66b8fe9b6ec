package query

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/sites"
)

// Limits on the exchange rates file (query.fx-rates).
const (
	maxFXFileBytes = 1 << 20
	maxFXRates     = 1000
	maxFXRateLen   = 40
)

// FXRates is a table of exchange rates: for each currency, the value of one unit of it in a
// common base currency. Revenue in currency X is reported in currency R as
// amount × rate(X) / rate(R), so one table serves sites of every reporting currency.
type FXRates map[string]*big.Rat

// LoadFXRates reads an exchange rates file: CSV (a .csv name) with lines "CODE,RATE" (a
// header line "currency,rate" and lines starting with # are skipped), or a JSON object
// {"EUR": 1, "USD": "0.92"} (any other name). Rates are positive decimals.
func LoadFXRates(path string) (FXRates, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("query.fx-rates: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFXFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("query.fx-rates: %w", err)
	}
	if len(b) > maxFXFileBytes {
		return nil, fmt.Errorf("query.fx-rates: %s is larger than %d bytes", path, maxFXFileBytes)
	}
	var rates FXRates
	if strings.EqualFold(filepath.Ext(path), ".csv") {
		rates, err = parseFXCSV(b)
	} else {
		rates, err = parseFXJSON(b)
	}
	if err != nil {
		return nil, fmt.Errorf("query.fx-rates: %s: %w", path, err)
	}
	return rates, nil
}

func parseFXCSV(b []byte) (FXRates, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.Comment = '#'
	r.FieldsPerRecord = 2
	r.TrimLeadingSpace = true
	rates := FXRates{}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w; each line is CODE,RATE such as USD,0.92", err)
		}
		if line == 1 && strings.EqualFold(strings.TrimSpace(rec[0]), "currency") {
			continue
		}
		if err := rates.add(rec[0], rec[1]); err != nil {
			return nil, fmt.Errorf("record %d: %w", line, err)
		}
	}
	return rates, rates.check()
}

func parseFXJSON(b []byte) (FXRates, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf(`not a JSON object such as {"EUR": 1, "USD": 0.92}: %v`, err)
	}
	rates := FXRates{}
	for code, v := range m {
		var s string
		switch x := v.(type) {
		case json.Number:
			s = x.String()
		case string:
			s = x
		default:
			return nil, fmt.Errorf("the rate of %q must be a number or a decimal string", code)
		}
		if err := rates.add(code, s); err != nil {
			return nil, err
		}
	}
	return rates, rates.check()
}

func (r FXRates) add(code, rate string) error {
	c, err := sites.ValidateCurrency(code)
	if err != nil || c == "" {
		return fmt.Errorf("%q is not a 3-letter ISO 4217 currency code", code)
	}
	if _, dup := r[c]; dup {
		return fmt.Errorf("%s is listed twice", c)
	}
	rate = strings.TrimSpace(rate)
	v, ok := new(big.Rat).SetString(rate)
	if len(rate) > maxFXRateLen || !ok || v.Sign() <= 0 || strings.ContainsAny(rate, "/eE") {
		return fmt.Errorf("the rate of %s must be a positive decimal number such as 0.92, got %q", c, truncate(rate, maxFXRateLen))
	}
	r[c] = v
	return nil
}

func (r FXRates) check() error {
	if len(r) == 0 {
		return errors.New("the file lists no rates")
	}
	if len(r) > maxFXRates {
		return fmt.Errorf("the file lists %d rates, more than %d", len(r), maxFXRates)
	}
	return nil
}

// factor returns what an amount in from is multiplied by to be in to; ok is false when the
// table lacks either currency.
func (r FXRates) factor(from, to string) (*big.Rat, bool) {
	if from == to {
		return big.NewRat(1, 1), true
	}
	a, b := r[from], r[to]
	if a == nil || b == nil {
		return nil, false
	}
	return new(big.Rat).Quo(a, b), true
}
