package store

import (
	"context"
	"log/slog"
)

// DeleteReport counts what DeleteSite removed.
type DeleteReport struct {
	// Rows are the rollup rows removed, by granularity.
	Rows map[Granularity]int64
	// Events are the stored events removed.
	Events int64
	// Partitions are the engine partitions or key ranges deleted (Cassandra partitions,
	// Pebble range tombstones); 0 on engines without partitions.
	Partitions int64
}

// TotalRows is the number of rollup rows removed, over every granularity.
func (r DeleteReport) TotalRows() int64 {
	var n int64
	for _, c := range r.Rows {
		n += c
	}
	return n
}

// LogValue lets a report be logged as one attribute group.
func (r DeleteReport) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("minute_rows", r.Rows[Minute]),
		slog.Int64("hour_rows", r.Rows[Hour]),
		slog.Int64("day_rows", r.Rows[Day]),
		slog.Int64("events", r.Events),
		slog.Int64("partitions", r.Partitions),
	)
}

// SiteDeleter is implemented by every engine: it removes all the data of one site.
//
// DeleteSite removes every rollup row (all granularities, dimensions and buckets) and every
// stored event of site, plus any engine-internal index of them, and reports what it
// removed. It does not touch the meta table: the site's record and the API keys that name
// it belong to package sites (see sites.DeleteSite), and the visitor-id salts are per day,
// shared by every site. Deleting a site without data is not an error (the report is
// empty), so an interrupted deletion can be run again. Writes for the site that arrive
// while or after it runs (a processor still working through the bus) are stored again.
type SiteDeleter interface {
	DeleteSite(ctx context.Context, site string) (DeleteReport, error)
}
