package processor

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Checkpoint format: head version 1, body versions 1 and 2.
//
// The head value at CheckpointKey is
//
//	byte     headVersion (1)
//	byte     0: the body follows inline
//	         1: the body is split into chunks, then:
//	uvarint  generation, uvarint chunk count, uvarint body length, uint32 CRC-32 of the body
//
// Chunks are stored at <key>/chunk/<generation>/<n>. A new generation is written in full
// before the head points at it, so a crash mid-way leaves the previous checkpoint intact.
//
// The body is
//
//	byte     body version: 2, or 1 when no open visit holds an event id (the version-1
//	         layout has no ids; a processor that reads only version 1 can resume from it)
//	varint   next offset
//	byte     1 if a watermark follows; varint watermark (Unix ms)
//	uvarint  string count, then each string as uvarint length + bytes
//	uvarint  session count, then per session (sorted by site, visitor id):
//	  uvarint site (string index), uvarint visitor id, varint start (Unix ms),
//	  uvarint last-start, uvarint page views, uvarint interactive events,
//	  if page views > 0: uvarint entry page, uvarint entryAt-start,
//	                     uvarint exit page, uvarint exitAt-start
//	  15 × uvarint visit attributes of the first event (visitAttrValues order)
//	  uvarint hour count, then per hour: uvarint (hour - start hour)/3600,
//	                                     uvarint page views, uvarint events
//	  uvarint value count, then per value: uvarint dimension, uvarint value
//	  version 2 only: uvarint id count (≤ MaxVisitEventIDs), then per id, oldest first:
//	                  8 bytes big-endian eventIDHash of the event id
//	uint32   CRC-32 (IEEE) of everything before it
//
// The rows-high mark at <key>/rows-high is byte 1 followed by a varint offset.
const (
	headVersion    = 1
	bodyVersion    = 2 // the newest body version
	bodyV1         = 1 // still read, and written while no open visit holds an event id
	highVersion    = 1
	ckptChunkBytes = 256 << 10
)

// ErrCheckpoint marks a stored checkpoint this binary cannot use (written by a newer
// version, or damaged). A processor must stop rather than start over and double count.
var ErrCheckpoint = errors.New("processor: unusable checkpoint")

// RowsHighKey is the Meta key (in CheckpointNamespace) of the rows-high mark of one shard
// of topic. The mark bounds the offsets the shard's rows hold, and those rows are written by
// whichever group consumes topic into the store, so it is kept per shard, not per group: a
// group that starts below it (a new --processor.group, or a checkpoint removed to
// reprocess the topic) settles those updates row by row instead of adding them again. A
// Kafka topic name cannot start with "#", so it never collides with a CheckpointKey.
func RowsHighKey(topic string, shard int32) string {
	return fmt.Sprintf("#rows-high/%s/%d", topic, shard)
}

// legacyHighKey is where the rows-high mark was kept before it moved to RowsHighKey: per
// group, next to the checkpoint. It is still read, never written.
func (p *Partition) legacyHighKey() string { return p.key + "/rows-high" }

func (p *Partition) chunkKey(gen uint64, i int) string {
	return p.key + "/chunk/" + strconv.FormatUint(gen, 10) + "/" + strconv.Itoa(i)
}

func (p *Partition) putRowsHigh(ctx context.Context, off int64) error {
	v := binary.AppendVarint([]byte{highVersion}, off)
	if err := p.st.PutMeta(ctx, CheckpointNamespace, p.highKey, v); err != nil {
		return fmt.Errorf("store rows-high mark: %w", err)
	}
	p.storedHigh = off
	return nil
}

// load reads the rows-high mark and the checkpoint, and restores the open visits.
func (p *Partition) load(ctx context.Context) error {
	for _, key := range []string{p.highKey, p.legacyHighKey()} {
		hv, ok, err := p.st.GetMeta(ctx, CheckpointNamespace, key)
		if err != nil {
			return fmt.Errorf("read rows-high mark: %w", err)
		}
		if !ok {
			continue
		}
		if len(hv) < 2 || hv[0] != highVersion {
			return fmt.Errorf("%w: rows-high mark %q has version %d", ErrCheckpoint, key, firstByte(hv))
		}
		off, n := binary.Varint(hv[1:])
		if n <= 0 {
			return fmt.Errorf("%w: rows-high mark %q is damaged", ErrCheckpoint, key)
		}
		if off > p.rowsHigh {
			p.rowsHigh, p.storedHigh = off, off
		}
	}

	head, ok, err := p.st.GetMeta(ctx, CheckpointNamespace, p.key)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	if !ok {
		return nil
	}
	body, gen, chunks, err := p.readBody(ctx, head)
	if err != nil {
		return err
	}
	if err := p.decode(body); err != nil {
		return err
	}
	p.ckptGen, p.ckptSize = gen, chunks
	p.resumed = true
	p.flushed = p.last
	p.checkpointed = p.last + 1
	p.cleanChunks(ctx)
	p.log.Info("resuming from checkpoint", "next", p.last+1, "open_sessions", len(p.sessions), "checkpoint_bytes", len(body), "rows_high", p.rowsHigh)
	return nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

func (p *Partition) readBody(ctx context.Context, head []byte) (body []byte, gen uint64, chunks int, err error) {
	if len(head) < 2 || head[0] != headVersion {
		return nil, 0, 0, fmt.Errorf("%w: %q has head version %d, this binary reads %d (upgrade the processor)", ErrCheckpoint, p.key, firstByte(head), headVersion)
	}
	switch head[1] {
	case 0:
		return head[2:], 0, 0, nil
	case 1:
	default:
		return nil, 0, 0, fmt.Errorf("%w: %q has unknown layout %d", ErrCheckpoint, p.key, head[1])
	}
	r := bytes.NewReader(head[2:])
	gen, err1 := binary.ReadUvarint(r)
	n, err2 := binary.ReadUvarint(r)
	size, err3 := binary.ReadUvarint(r)
	var sum [4]byte
	_, err4 := r.Read(sum[:])
	if err := errors.Join(err1, err2, err3, err4); err != nil || n > 1<<20 || size > 1<<34 {
		return nil, 0, 0, fmt.Errorf("%w: %q has a damaged head", ErrCheckpoint, p.key)
	}
	body = make([]byte, 0, size)
	for i := range int(n) {
		c, ok, err := p.st.GetMeta(ctx, CheckpointNamespace, p.chunkKey(gen, i))
		if err != nil {
			return nil, 0, 0, fmt.Errorf("read checkpoint chunk %d: %w", i, err)
		}
		if !ok {
			return nil, 0, 0, fmt.Errorf("%w: chunk %d of generation %d of %q is missing", ErrCheckpoint, i, gen, p.key)
		}
		body = append(body, c...)
	}
	if uint64(len(body)) != size || crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(sum[:]) {
		return nil, 0, 0, fmt.Errorf("%w: chunks of generation %d of %q do not match their head", ErrCheckpoint, gen, p.key)
	}
	return body, gen, int(n), nil
}

// cleanChunks deletes chunks no head points at (left by a crash mid-checkpoint).
// Failures only leave garbage behind, so they are logged and ignored.
func (p *Partition) cleanChunks(ctx context.Context) {
	prefix := p.key + "/chunk/"
	keep := prefix + strconv.FormatUint(p.ckptGen, 10) + "/"
	var stale []string
	err := p.st.ListMeta(ctx, CheckpointNamespace, func(k string, _ []byte) error {
		if strings.HasPrefix(k, prefix) && (p.ckptSize == 0 || !strings.HasPrefix(k, keep)) {
			stale = append(stale, k)
		}
		return nil
	})
	for _, k := range stale {
		err = errors.Join(err, p.st.DeleteMeta(ctx, CheckpointNamespace, k))
	}
	if err != nil {
		p.log.Warn("could not clean up old checkpoint chunks", "err", err)
	}
}

// Checkpoint flushes, then stores the position (Next) and the open visits, so a processor
// that opens the partition later continues exactly here. It returns the offset stored.
func (p *Partition) Checkpoint(ctx context.Context) (next int64, err error) {
	if p.Dirty() {
		if err := p.Flush(ctx); err != nil {
			return 0, err
		}
	}
	next = p.last + 1
	if p.checkpointed == next {
		return next, nil
	}
	body := p.encode() // Flush has ended the visits no event can join
	if len(body) <= ckptChunkBytes {
		head := append([]byte{headVersion, 0}, body...)
		if err := p.st.PutMeta(ctx, CheckpointNamespace, p.key, head); err != nil {
			return 0, fmt.Errorf("store checkpoint: %w", err)
		}
		p.dropChunks(ctx, p.ckptGen, p.ckptSize)
		p.ckptSize = 0
	} else {
		gen := p.ckptGen + 1
		n := 0
		for i := 0; i < len(body); i += ckptChunkBytes {
			j := min(i+ckptChunkBytes, len(body))
			if err := p.st.PutMeta(ctx, CheckpointNamespace, p.chunkKey(gen, n), body[i:j]); err != nil {
				return 0, fmt.Errorf("store checkpoint chunk: %w", err)
			}
			n++
		}
		head := []byte{headVersion, 1}
		head = binary.AppendUvarint(head, gen)
		head = binary.AppendUvarint(head, uint64(n))
		head = binary.AppendUvarint(head, uint64(len(body)))
		head = binary.BigEndian.AppendUint32(head, crc32.ChecksumIEEE(body))
		if err := p.st.PutMeta(ctx, CheckpointNamespace, p.key, head); err != nil {
			return 0, fmt.Errorf("store checkpoint: %w", err)
		}
		p.dropChunks(ctx, p.ckptGen, p.ckptSize)
		p.ckptGen, p.ckptSize = gen, n
	}
	p.checkpointed = next
	p.stats.Checkpoints++
	p.m.checkpoints.Inc()
	p.m.ckptBytes.Set(float64(len(body)))
	p.storeSeal(ctx)
	return next, nil
}

// Seal returns the time (Unix ms) before which this partition will never change a rollup
// row again, and false while it has seen no event. Rows change only for events it still
// accepts (no older than the newest one seen minus the lateness) and at the start of the
// visits they join or close (a visit's rows sit in the hour and day it started), so the
// seal is the earlier of the oldest accepted event time and the oldest open visit's start.
// See store.SealedThrough.
func (p *Partition) Seal() (int64, bool) {
	if !p.seen {
		return 0, false
	}
	seal := p.watermark - p.lateMS
	for _, s := range p.sessions {
		seal = min(seal, s.start)
	}
	return seal, true
}

// storeSeal records the seal after a checkpoint, when it moved. The checkpoint has flushed
// every row, so what the seal promises is in the store. A failure only delays sealing: it
// is logged, and the next checkpoint tries again.
func (p *Partition) storeSeal(ctx context.Context) {
	seal, ok := p.Seal()
	if !ok || seal <= p.sealed {
		return
	}
	if err := p.st.PutMeta(ctx, store.SealNamespace, p.sealKey, store.EncodeSeal(seal)); err != nil {
		p.log.Warn("could not record the partition's seal; finished days stay unmerged until the next checkpoint", "err", err)
		return
	}
	p.sealed = seal
}

func (p *Partition) dropChunks(ctx context.Context, gen uint64, n int) {
	for i := range n {
		if err := p.st.DeleteMeta(ctx, CheckpointNamespace, p.chunkKey(gen, i)); err != nil {
			p.log.Warn("could not delete an old checkpoint chunk", "err", err)
			return
		}
	}
}

// encode writes the checkpoint body for the current state.
func (p *Partition) encode() []byte {
	strs := map[string]uint64{}
	var table []string
	idx := func(s string) uint64 {
		if i, ok := strs[s]; ok {
			return i
		}
		i := uint64(len(table))
		strs[s] = i
		table = append(table, s)
		return i
	}
	sessions := make([]*session, 0, len(p.sessions))
	for _, s := range p.sessions {
		sessions = append(sessions, s)
	}
	slices.SortFunc(sessions, func(a, b *session) int {
		return cmp.Or(strings.Compare(a.site, b.site), cmp.Compare(a.vid, b.vid))
	})
	version := byte(bodyV1)
	if slices.ContainsFunc(sessions, func(s *session) bool { return len(s.ids) > 0 }) {
		version = bodyVersion
	}

	var sb []byte
	sb = binary.AppendUvarint(sb, uint64(len(sessions)))
	for _, s := range sessions {
		sb = binary.AppendUvarint(sb, idx(s.site))
		sb = binary.AppendUvarint(sb, s.vid)
		sb = binary.AppendVarint(sb, s.start)
		sb = binary.AppendUvarint(sb, uint64(s.last-s.start))
		sb = binary.AppendUvarint(sb, uint64(s.pageviews))
		sb = binary.AppendUvarint(sb, uint64(s.interactive))
		if s.pageviews > 0 {
			sb = binary.AppendUvarint(sb, idx(s.entry))
			sb = binary.AppendUvarint(sb, uint64(s.entryAt-s.start))
			sb = binary.AppendUvarint(sb, idx(s.exit))
			sb = binary.AppendUvarint(sb, uint64(s.exitAt-s.start))
		}
		for _, a := range unpackVisitAttrs(s.attrs) {
			sb = binary.AppendUvarint(sb, idx(a))
		}
		startHour := store.Hour.Truncate(s.start)
		sb = binary.AppendUvarint(sb, uint64(len(s.hours)))
		for _, h := range s.hours {
			sb = binary.AppendUvarint(sb, uint64((h.hour-startHour)/3600))
			sb = binary.AppendUvarint(sb, uint64(h.pageviews))
			sb = binary.AppendUvarint(sb, uint64(h.ev))
		}
		sb = binary.AppendUvarint(sb, uint64(len(s.values)))
		for _, v := range s.values {
			sb = binary.AppendUvarint(sb, idx(v.dim))
			sb = binary.AppendUvarint(sb, idx(v.value))
		}
		if version >= 2 {
			sb = binary.AppendUvarint(sb, uint64(len(s.ids)))
			for _, h := range s.ids {
				sb = binary.BigEndian.AppendUint64(sb, h)
			}
		}
	}

	b := []byte{version}
	b = binary.AppendVarint(b, p.last+1)
	if p.seen {
		b = append(b, 1)
		b = binary.AppendVarint(b, p.watermark)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(table)))
	for _, s := range table {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, sb...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// decoder reads a checkpoint body; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errors.New("truncated or malformed")
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uint64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) count(max uint64) int {
	n := d.uvarint()
	if n > max || n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (p *Partition) decode(body []byte) error {
	bad := func(err error) error {
		return fmt.Errorf("%w: %q: %v", ErrCheckpoint, p.key, err)
	}
	if len(body) < 5 {
		return bad(errors.New("too short"))
	}
	version := body[0]
	if version != bodyV1 && version != bodyVersion {
		return bad(fmt.Errorf("body version %d, this binary reads %d to %d (upgrade the processor)", version, bodyV1, bodyVersion))
	}
	n := len(body) - 4
	if crc32.ChecksumIEEE(body[:n]) != binary.BigEndian.Uint32(body[n:]) {
		return bad(errors.New("checksum mismatch"))
	}
	d := &decoder{b: body[1:n]}
	next := d.varint()
	if d.byte() == 1 {
		p.watermark, p.seen = d.varint(), true
	}
	table := make([]string, d.count(1<<32))
	for i := range table {
		l := d.count(1 << 32)
		if d.err != nil {
			break
		}
		table[i] = string(d.b[:l])
		d.b = d.b[l:]
	}
	str := func() string {
		i := d.uvarint()
		if i >= uint64(len(table)) {
			d.fail()
			return ""
		}
		return p.intern.get(table[i])
	}
	ns := d.count(1 << 32)
	for range ns {
		site := str()
		s := &session{site: site, vid: d.uvarint(), start: d.varint(), lastMinute: noHour}
		s.last = s.start + int64(d.uvarint())
		s.pageviews = int64(d.uvarint())
		s.interactive = int64(d.uvarint())
		s.entryAt, s.exitAt = 1<<63-1, -1<<63
		if s.pageviews > 0 {
			s.entry = str()
			s.entryAt = s.start + int64(d.uvarint())
			s.exit = str()
			s.exitAt = s.start + int64(d.uvarint())
		}
		var attrs visitAttrValues
		for i := range attrs {
			attrs[i] = str()
		}
		s.attrs = p.packVisitAttrs(&attrs)
		startHour := store.Hour.Truncate(s.start)
		s.hours = make([]hourCount, d.count(1<<20))
		for i := range s.hours {
			s.hours[i] = hourCount{hour: startHour + 3600*int64(d.uvarint()), pageviews: int64(d.uvarint()), ev: int64(d.uvarint())}
		}
		nv := d.count(MaxVisitValues)
		for range nv {
			dim := str()
			s.addValue(dimValue{dim, str()}, noHour)
		}
		if version >= 2 {
			if n := d.count(MaxVisitEventIDs); n > 0 {
				s.ids = make([]uint64, n)
				for i := range s.ids {
					s.ids[i] = d.uint64()
				}
			}
		}
		if d.err != nil {
			break
		}
		s.id = SessionID(s.site, s.vid, s.start)
		s.appliedVisits, s.appliedBounce, s.appliedDuration = 1, s.bounce(), s.duration() // a checkpoint follows a flush
		p.sessions[visitorKey{s.site, s.vid}] = s
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		clear(p.sessions)
		p.seen = false
		return bad(d.err)
	}
	p.last = next - 1
	return nil
}
