// Package processor turns the event stream into what the query service reads. It consumes
// the bus as a consumer group, cuts each visitor's events into visits, folds every event
// into full-state rollup rows and stores the enriched events for queries no rollup
// answers, then checkpoints its position together with its open visits. The definitions
// it implements are those of docs/metrics.md.
//
// # Rows
//
// For every event, in the bucket of the event's time: the totals at minute, hour and day,
// and at hour and day every dimension of dims.Rolled plus event:props:<key> for each prop
// of the event (only events that have the key). Page views, custom events and unique
// visitors (a HyperLogLog sketch) are counted there. Visits, bounces and durations are
// counted in the bucket of the visit's start, under the visit's value of each visit
// dimension and under every event-dimension value the visit has (once per value). Rows
// carry Shard = the bus partition; the query engine adds shards up.
//
// Entry and exit pages move while a visit goes on. The visit, its bounce and duration, and
// the page views and events of its earlier events move with them. Their unique visitors
// cannot be taken out of a sketch, so the rows of visit:entry_page and visit:exit_page get
// a companion row (dimension "internal:closed-visitors:<dimension>", never read by the
// query engine) with the visitors of finished visits; the visible row is that plus the
// visitors of the open visits that have its value now, recomputed at a flush whenever a
// visitor left it.
//
// # Exactly once
//
// Rows are full state and remember the highest offset folded into them (Row.Offset). A
// row is loaded from the store on first use (in batches, per fetched batch), and an update
// caused by the event at offset o is applied to it only if o > the offset it was loaded
// with: the store holds the others already. Everything is flushed with Row.Offset = the
// last offset applied, then the checkpoint (position, watermark and open visits) is
// stored, and only then the bus offset is committed. After a crash a processor resumes
// from the checkpoint with the visits as they were there, replays, and the rows the
// crashed run had already written skip what they hold. Replays are deterministic: visits
// end on the event-time watermark, never on the wall clock.
//
// Before the rows of a flush are written, a rows-high mark (the offset about to be
// written) is stored for the shard (RowsHighKey: per topic and partition, not per group, as
// the rows are). Above it no stored row can be newer than an event, which lets rows that
// are not loaded yet collect updates without remembering each one, and lets a visit's
// bounce and duration reach its rows once per flush rather than once per event. Below it
// (a replay: after a crash, under a new group name, or with the checkpoint removed to
// reprocess the topic) updates are decided row by row.
//
// # Custom-property values
//
// A partition keeps at most Config.MaxPropValues distinct values per site, property key
// and UTC day; Apply turns any further value into dims.OtherValue before the event reaches
// the rows or the store, so rollups and stored events agree. The values of a day are read
// back from the shard's day rows when first needed, which makes a replay decide the same
// (see propvalues.go).
//
// # Engagement and resends
//
// An engagement event (event.EngagementName) is neither a page view nor a custom event:
// it is stored, but counts in no row except that its visit lasts at least until its time
// (and so stays open for 30 more minutes). It never starts a visit: without an open visit
// of its visitor it is dropped (glimpse_processor_engagement_dropped_total).
//
// A visit remembers the ids (event.Event.ID) of its latest MaxVisitEventIDs events. An
// event whose id its open visit has already seen is a resend of an event the bus holds
// twice (a collector answered 503 after the bus had stored it): it is dropped, stored
// nowhere and changes nothing, not even the watermark
// (glimpse_processor_duplicates_dropped_total). The ids are part of the checkpoint, so a
// replay drops the same resends.
//
// # Checkpoints
//
// Meta namespace CheckpointNamespace, key CheckpointKey(topic, group, partition): a
// versioned binary encoding (see checkpoint.go) of the next offset, the watermark and the
// open visits (with the event ids they remember), split into chunks when large. A
// checkpoint of a newer version, or a damaged one, stops the processor with ErrCheckpoint
// rather than starting over.
package processor
