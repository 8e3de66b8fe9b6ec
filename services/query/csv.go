package query

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
)

// writeCSV writes the answer as CSV: a header row with the dimension and metric names,
// then one line per result row.
func writeCSV(w io.Writer, q *Query, resp *Response) error {
	cw := csv.NewWriter(w)
	header := make([]string, 0, len(q.Dimensions)+len(q.Metrics))
	header = append(header, q.Dimensions...)
	header = append(header, q.Metrics...)
	if err := cw.Write(header); err != nil {
		return err
	}
	rec := make([]string, len(header))
	for _, r := range resp.Results {
		for i, d := range r.Dimensions {
			rec[i] = csvSafe(d)
		}
		for i, m := range r.Metrics {
			rec[len(r.Dimensions)+i] = formatMetric(m)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func formatMetric(v any) string {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number: // revenue in the reporting currency
		return x.String()
	case map[string]json.Number: // revenue by currency: "EUR 12.5; USD 3"
		curs := make([]string, 0, len(x))
		for c := range x {
			curs = append(curs, c)
		}
		slices.Sort(curs)
		for i, c := range curs {
			curs[i] = c + " " + x[c].String()
		}
		return strings.Join(curs, "; ")
	}
	return ""
}

// csvSafe keeps spreadsheet programs from running a value as a formula: page paths,
// referrers and custom properties come from visitors' browsers, so a value that starts with
// = + - @ (or a tab or carriage return) is prefixed with a single quote.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvFilename names the download after the site and the dates it covers.
func csvFilename(q *Query) string {
	site := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, q.SiteID)
	from := q.Range.From.In(q.zone()).Format(dayLayout)
	to := q.Range.To.Add(-1).In(q.zone()).Format(dayLayout)
	return "glimpse-" + site + "-" + from + "-" + to + ".csv"
}
