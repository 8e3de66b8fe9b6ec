package query

import (
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// revenueMicros is how many units of an amount make one unit of its currency: amounts are
// summed as integers of millionths (the collector keeps at most 6 fractional digits), so no
// sum drifts the way a float sum would.
const revenueMicros = 1_000_000

// curSum is the revenue of one currency: the sum of amounts in millionths, and how many
// events carried it. Amounts may have 15 integer digits, so the sum is a big.Int.
type curSum struct {
	micros big.Int
	n      int64
}

// revenueTotals is the revenue of one group, by currency.
type revenueTotals map[string]*curSum

// parseMicros turns a collector-normalised amount ("9.99") into millionths.
func parseMicros(amount string) (*big.Int, bool) {
	intPart, frac, _ := strings.Cut(amount, ".")
	if len(frac) > 6 || intPart == "" && frac == "" {
		return nil, false
	}
	v, ok := new(big.Int).SetString(intPart+frac+strings.Repeat("0", 6-len(frac)), 10)
	if !ok || v.Sign() <= 0 {
		return nil, false
	}
	return v, true
}

// add counts one event's revenue; amounts that cannot be read are left out.
func (t *revenueTotals) add(r *event.Revenue) {
	if r == nil {
		return
	}
	v, ok := parseMicros(r.Amount)
	if !ok || len(r.Currency) != event.MaxCurrencyLen {
		return
	}
	if *t == nil {
		*t = revenueTotals{}
	}
	c := (*t)[r.Currency]
	if c == nil {
		c = &curSum{}
		(*t)[r.Currency] = c
	}
	c.micros.Add(&c.micros, v)
	c.n++
}

// merge adds o to t.
func (t *revenueTotals) merge(o revenueTotals) {
	for cur, s := range o {
		if *t == nil {
			*t = revenueTotals{}
		}
		c := (*t)[cur]
		if c == nil {
			c = &curSum{}
			(*t)[cur] = c
		}
		c.micros.Add(&c.micros, &s.micros)
		c.n += s.n
	}
}

func isRevenueMetric(m string) bool {
	return m == MetricTotalRevenue || m == MetricAverageRevenue
}

func needsRevenue(ms []string) bool { return slices.ContainsFunc(ms, isRevenueMetric) }

// revenueView says how one answer reports revenue: as numbers in the site's reporting
// currency when it has one and every currency in the answer converts to it, otherwise as
// an object of amounts by currency.
type revenueView struct {
	currency string // the site's reporting currency, "" when it has none
	rates    FXRates
	numeric  bool
}

// decide picks the form of the answer from every group's currencies, and returns the
// warning that explains an answer by currency.
func (v *revenueView) decide(g *groups) string {
	missing := map[string]bool{}
	for _, a := range g.m {
		for cur := range a.rev {
			if _, ok := v.rates.factor(cur, v.currency); v.currency == "" || !ok {
				missing[cur] = true
			}
		}
	}
	v.numeric = v.currency != "" && len(missing) == 0
	if v.numeric || len(missing) == 0 {
		return ""
	}
	curs := make([]string, 0, len(missing))
	for c := range missing {
		curs = append(curs, c)
	}
	slices.Sort(curs)
	if v.currency == "" {
		return "revenue is reported by currency because the site has no reporting currency; set one with glimpse sites add " +
			"<site> --update --currency=EUR (and load exchange rates with --query.fx-rates when revenue comes in several currencies)"
	}
	return fmt.Sprintf("revenue is reported by currency because there is no exchange rate from %s to %s; add them to the --query.fx-rates table",
		strings.Join(curs, ", "), v.currency)
}

// converted is the total and the event count of t in the reporting currency.
func (v *revenueView) converted(t revenueTotals) (*big.Rat, int64) {
	sum := new(big.Rat)
	var n int64
	for cur, s := range t {
		f, ok := v.rates.factor(cur, v.currency)
		if !ok {
			continue
		}
		x := new(big.Rat).SetFrac(&s.micros, big.NewInt(revenueMicros))
		sum.Add(sum, x.Mul(x, f))
		n += s.n
	}
	return sum, n
}

// value renders revenue metric m of t: a number in the reporting currency, or an object of
// numbers by currency.
func (v *revenueView) value(t revenueTotals, m string) any {
	if v.numeric {
		sum, n := v.converted(t)
		if m == MetricAverageRevenue {
			if n == 0 {
				return json.Number("0")
			}
			sum.Quo(sum, new(big.Rat).SetInt64(n))
		}
		return decimalNumber(sum)
	}
	out := make(map[string]json.Number, len(t))
	for cur, s := range t {
		x := new(big.Rat).SetFrac(&s.micros, big.NewInt(revenueMicros))
		if m == MetricAverageRevenue {
			x.Quo(x, new(big.Rat).SetInt64(s.n))
		}
		out[cur] = decimalNumber(x)
	}
	return out
}

// sortKey orders rows by revenue: the converted amount, or without conversion the plain
// sum of the amounts of every currency.
func (v *revenueView) sortKey(t revenueTotals, m string) float64 {
	var sum *big.Rat
	var n int64
	if v.numeric {
		sum, n = v.converted(t)
	} else {
		sum = new(big.Rat)
		for _, s := range t {
			sum.Add(sum, new(big.Rat).SetFrac(&s.micros, big.NewInt(revenueMicros)))
			n += s.n
		}
	}
	if m == MetricAverageRevenue && n > 0 {
		sum.Quo(sum, new(big.Rat).SetInt64(n))
	}
	f, _ := sum.Float64()
	return f
}

// decimalNumber renders x rounded to cents, without trailing zeros: 12.5, 3, 0.07.
func decimalNumber(x *big.Rat) json.Number {
	s := x.FloatString(2)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	if s == "" || s == "-" {
		s = "0"
	}
	return json.Number(s)
}
