package query

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/dims"
)

// Logical filter operators, as in Plausible's Stats API v2.
const (
	OpAnd = "and"
	OpOr  = "or"
	OpNot = "not"
)

const filterHelp = `a filter is ["is"|"is_not"|"contains"|"contains_not"|"matches"|"matches_not", dimension, [values...]] with an optional 4th element {"case_sensitive": false}, or ["and", [filters...]], ["or", [filters...]] or ["not", filter]`

// Filter keeps the events or visits for which it holds. A leaf compares the value of one
// Dimension with Values; "and", "or" and "not" combine Operands ("not" has exactly one).
// Filters are built by ParseQuery, which also compiles their patterns.
//
// A filter is evaluated on each event (page view or custom event) with the event's own
// values for event dimensions and its visit's values for visit dimensions; a visit counts
// when at least one of its events passes. A filter on visit dimensions only thus keeps or
// drops whole visits.
type Filter struct {
	Op         string // one of the Op* constants
	Dimension  string // leaves only
	Values     []string
	IgnoreCase bool     // Plausible's {"case_sensitive": false}
	Operands   []Filter // and, or, not

	patterns []*regexp.Regexp // matches / matches_not
	lowered  []string         // contains / contains_not without case
}

// isLogical reports whether f combines other filters.
func (f *Filter) isLogical() bool { return f.Op == OpAnd || f.Op == OpOr || f.Op == OpNot }

// leaves counts the comparisons in f.
func (f *Filter) leaves() int {
	if !f.isLogical() {
		return 1
	}
	n := 0
	for i := range f.Operands {
		n += f.Operands[i].leaves()
	}
	return n
}

// dimensions appends the dimensions f compares to ds, each once.
func (f *Filter) dimensions(ds []string) []string {
	if !f.isLogical() {
		if !slices.Contains(ds, f.Dimension) {
			ds = append(ds, f.Dimension)
		}
		return ds
	}
	for i := range f.Operands {
		ds = f.Operands[i].dimensions(ds)
	}
	return ds
}

// singleDimension returns the one dimension f compares, or "" when it compares several.
func (f *Filter) singleDimension() string {
	if ds := f.dimensions(nil); len(ds) == 1 {
		return ds[0]
	}
	return ""
}

// usesEventDimension reports whether f compares an event dimension.
func (f *Filter) usesEventDimension() bool {
	for _, d := range f.dimensions(nil) {
		if dims.IsEvent(d) {
			return true
		}
	}
	return false
}

// Eval reports whether f holds when each dimension d has the value value(d).
func (f *Filter) Eval(value func(d string) string) bool {
	switch f.Op {
	case OpAnd:
		for i := range f.Operands {
			if !f.Operands[i].Eval(value) {
				return false
			}
		}
		return true
	case OpOr:
		for i := range f.Operands {
			if f.Operands[i].Eval(value) {
				return true
			}
		}
		return false
	case OpNot:
		return !f.Operands[0].Eval(value)
	}
	return f.Match(value(f.Dimension))
}

// Match reports whether value v passes the filter; a logical filter must compare a single
// dimension (see singleDimension), which then has the value v.
func (f *Filter) Match(v string) bool {
	switch f.Op {
	case OpAnd, OpOr, OpNot:
		return f.Eval(func(string) string { return v })
	case OpIs, OpIsNot:
		hit := false
		for _, x := range f.Values {
			if x == v || (f.IgnoreCase && strings.EqualFold(x, v)) {
				hit = true
				break
			}
		}
		return hit == (f.Op == OpIs)
	case OpContains, OpContainsNot:
		hit := false
		if f.IgnoreCase {
			lv := strings.ToLower(v)
			for _, x := range f.lowered {
				if strings.Contains(lv, x) {
					hit = true
					break
				}
			}
		} else {
			for _, x := range f.Values {
				if strings.Contains(v, x) {
					hit = true
					break
				}
			}
		}
		return hit == (f.Op == OpContains)
	case OpMatches, OpMatchesNot:
		hit := false
		for _, re := range f.patterns {
			if re.MatchString(v) {
				hit = true
				break
			}
		}
		return hit == (f.Op == OpMatches)
	}
	return false
}

// echo renders f as the API spells it.
func (f *Filter) echo() []any {
	switch f.Op {
	case OpAnd, OpOr:
		subs := make([][]any, len(f.Operands))
		for i := range f.Operands {
			subs[i] = f.Operands[i].echo()
		}
		return []any{f.Op, subs}
	case OpNot:
		return []any{f.Op, f.Operands[0].echo()}
	}
	ef := []any{f.Op, f.Dimension, f.Values}
	if f.IgnoreCase {
		ef = append(ef, map[string]bool{"case_sensitive": false})
	}
	return ef
}

// parseFilter parses one element of "filters"; a top-level "and" is flattened into its
// operands, which all apply anyway.
func parseFilter(raw json.RawMessage, where string, depth int) ([]Filter, error) {
	f, err := parseFilterExpr(raw, where, depth)
	if err != nil {
		return nil, err
	}
	if f.Op == OpAnd {
		var out []Filter
		for _, o := range f.Operands {
			if o.Op == OpAnd {
				out = append(out, flattenAnd(o)...)
			} else {
				out = append(out, o)
			}
		}
		return out, nil
	}
	return []Filter{f}, nil
}

func flattenAnd(f Filter) []Filter {
	var out []Filter
	for _, o := range f.Operands {
		if o.Op == OpAnd {
			out = append(out, flattenAnd(o)...)
		} else {
			out = append(out, o)
		}
	}
	return out
}

// parseFilterExpr parses one filter expression at nesting depth depth.
func parseFilterExpr(raw json.RawMessage, where string, depth int) (Filter, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) < 2 {
		return Filter{}, badRequest("%s: %s", where, filterHelp)
	}
	var op string
	if err := json.Unmarshal(parts[0], &op); err != nil {
		return Filter{}, badRequest("%s: the first element must be the operator; %s", where, filterHelp)
	}
	switch op {
	case OpAnd, OpOr, OpNot:
		if depth >= maxFilterDepth {
			return Filter{}, badRequest("%s: \"and\", \"or\" and \"not\" filters nest at most %d deep", where, maxFilterDepth)
		}
		if op == OpNot {
			if len(parts) != 2 {
				return Filter{}, badRequest(`%s: "not" takes one filter: ["not", filter]`, where)
			}
			sub, err := parseFilterExpr(parts[1], where+"[1]", depth+1)
			if err != nil {
				return Filter{}, err
			}
			return Filter{Op: op, Operands: []Filter{sub}}, nil
		}
		var subs []json.RawMessage
		if len(parts) != 2 || json.Unmarshal(parts[1], &subs) != nil || len(subs) == 0 {
			return Filter{}, badRequest(`%s: %q takes one array of filters: [%q, [filter, filter, ...]]`, where, op, op)
		}
		if len(subs) > MaxFilters {
			return Filter{}, badRequest("at most %d filters per query", MaxFilters)
		}
		f := Filter{Op: op}
		n := 0
		for i, s := range subs {
			sub, err := parseFilterExpr(s, fmt.Sprintf("%s[1][%d]", where, i), depth+1)
			if err != nil {
				return Filter{}, err
			}
			if n += sub.leaves(); n > MaxFilters {
				return Filter{}, badRequest("at most %d filters per query", MaxFilters)
			}
			f.Operands = append(f.Operands, sub)
		}
		return f, nil
	case "has_done", "has_not_done":
		return Filter{}, badRequest("%s: the %q filter operator is not supported; %s", where, op, filterHelp)
	case OpIs, OpIsNot, OpContains, OpContainsNot, OpMatches, OpMatchesNot:
	default:
		return Filter{}, badRequest("%s: unknown filter operator %q; %s", where, op, filterHelp)
	}
	if len(parts) != 3 && len(parts) != 4 {
		return Filter{}, badRequest("%s: %s", where, filterHelp)
	}
	f := Filter{Op: op}
	if err := json.Unmarshal(parts[1], &f.Dimension); err != nil {
		return Filter{}, badRequest("%s: the second element must be a dimension name; %s", where, filterHelp)
	}
	if isTimeDim(f.Dimension) {
		return Filter{}, badRequest("%s: time dimensions cannot be filtered; choose the time span with date_range", where)
	}
	if !knownDimension(f.Dimension) {
		return Filter{}, badRequest("%s: unknown dimension %q; %s", where, f.Dimension, dimensionHelp())
	}
	if err := json.Unmarshal(parts[2], &f.Values); err != nil {
		return Filter{}, badRequest("%s: the third element must be an array of strings, e.g. [\"/pricing\"]; %s", where, filterHelp)
	}
	if len(f.Values) == 0 || len(f.Values) > MaxFilterValues {
		return Filter{}, badRequest("%s: a filter needs between 1 and %d values, got %d", where, MaxFilterValues, len(f.Values))
	}
	if len(parts) == 4 {
		var mod map[string]json.RawMessage
		if err := json.Unmarshal(parts[3], &mod); err != nil {
			return Filter{}, badRequest(`%s: the 4th element must be an object such as {"case_sensitive": false}`, where)
		}
		for k, v := range mod {
			var b bool
			if k != "case_sensitive" || json.Unmarshal(v, &b) != nil {
				return Filter{}, badRequest(`%s: the only filter option is "case_sensitive" (true or false)`, where)
			}
			f.IgnoreCase = !b
		}
	}
	if f.Op == OpMatches || f.Op == OpMatchesNot {
		for _, v := range f.Values {
			if len(v) > MaxPatternLen {
				return Filter{}, badRequest("%s: a pattern may be at most %d bytes", where, MaxPatternLen)
			}
			expr := v
			if f.IgnoreCase {
				expr = "(?i)" + v
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				return Filter{}, badRequest("%s: %q is not a valid regular expression (RE2 syntax): %v", where, v, err)
			}
			f.patterns = append(f.patterns, re)
		}
	}
	if f.IgnoreCase && (f.Op == OpContains || f.Op == OpContainsNot) {
		f.lowered = make([]string, len(f.Values))
		for i, v := range f.Values {
			f.lowered[i] = strings.ToLower(v)
		}
	}
	return f, nil
}
