// Dates and the periods the dashboard offers. Days are those of the site's time zone, as the
// query API counts them: the dashboard learns the site's date from the API's answer (its
// query.date_range, in the site's zone with its offset) and lets the API resolve every date
// range and comparison in that zone. Dates are handled here as the UTC midnight (ms) of the
// calendar date, which makes day arithmetic plain.

export const DAY = 86_400_000
export const MINUTE = 60_000

/** iso formats a UTC midnight (ms) as YYYY-MM-DD. */
export const iso = (t) => new Date(t).toISOString().slice(0, 10)
/** isoMinute formats a time (ms) as an RFC 3339 timestamp with whole minutes. */
export const isoMinute = (t) => new Date(Math.floor(t / MINUTE) * MINUTE).toISOString().slice(0, 16) + ':00Z'
/** parseDate reads YYYY-MM-DD as the UTC midnight (ms) of that date, or NaN. */
export const parseDate = (s) => (/^\d{4}-\d{2}-\d{2}$/.test(s || '') ? Date.parse(s + 'T00:00:00Z') : NaN)
export const startOfDay = (t) => Math.floor(t / DAY) * DAY
const startOfMonth = (t) => { const d = new Date(t); return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) }
const endOfMonth = (t) => { const d = new Date(t); return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0) }

export const PERIODS = [
  ['day', 'Today'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['month', 'This month'],
  ['custom', 'Custom range'],
]

/**
 * siteDay reads the site's current day from the answer to a date_range "day" query, whose
 * query.date_range is today in the site's zone with its offset
 * (["2026-11-26T00:00:00+13:00", "2026-11-26T23:59:59+13:00"]):
 *   today  the site's date (UTC midnight of it, ms), as resolve takes it
 *   until  the instant that day ends, after which the date must be read again
 *   zone   the zone's offset at the day's start, as words ("UTC+13:00", "UTC")
 * It is null when the answer does not have that shape.
 */
export function siteDay(answer) {
  const [start, end] = answer?.query?.date_range || []
  const today = parseDate(String(start).slice(0, 10))
  const until = Date.parse(end) + 1000
  const offset = String(start).slice(19)
  return Number.isNaN(today) || Number.isNaN(until) ? null : { today, until, zone: offset === 'Z' ? 'UTC' : `UTC${offset}` }
}

/**
 * resolve turns the period picked in the UI into what the queries use, given the site's
 * current date `today` (see siteDay):
 *   range    date_range of the current period, as the API takes it
 *   from, to first and last day of the data shown
 *   days     number of days of the chart's range
 *   running  whether the current period runs up to now (today is in it)
 *   prev     date_range of the whole previous period, for include.comparisons
 *   label    words for the previous period
 */
export function resolve({ period, from: customFrom, to: customTo }, today) {
  let from, to, range
  switch (period) {
    case 'day': from = to = today; range = 'day'; break
    case '30d': from = today - 29 * DAY; to = today; range = '30d'; break
    case 'month': from = startOfMonth(today); to = endOfMonth(today); range = 'month'; break
    case 'custom': {
      from = parseDate(customFrom)
      to = parseDate(customTo)
      if (!(from <= to)) return resolve({ period: '7d' }, today)
      range = [iso(from), iso(to)]
      break
    }
    default: from = today - 6 * DAY; to = today; range = '7d'
  }
  const days = Math.round((to - from) / DAY) + 1
  let pFrom, pTo
  if (period === 'month') {
    pFrom = startOfMonth(from - DAY)
    pTo = endOfMonth(pFrom)
  } else {
    pFrom = from - days * DAY
    pTo = from - DAY
  }
  const label = { day: 'yesterday', month: 'last month' }[period] || 'previous period'
  return {
    period: PERIODS.some(([p]) => p === period) ? period : '7d',
    range, from, to, days,
    running: from <= today && today <= to,
    prev: [iso(pFrom), iso(pTo)],
    label,
  }
}

/**
 * soFar is the stretch of the previous period as long as the running current period has
 * lasted until `now` (today so far vs. yesterday until this time), as a date_range of two
 * timestamps. It reads both periods' starts from the answer to a query with
 * include.comparisons, where the API resolved them in the site's zone: a period after a
 * daylight-saving change starts at another offset than the one before it. It is null when
 * the answer has no comparison period.
 */
export function soFar(answer, now = Date.now()) {
  const start = Date.parse(answer?.query?.date_range?.[0])
  const [pStart, pLast] = (answer?.query?.include?.comparisons?.date_range || []).map(Date.parse)
  if ([start, pStart, pLast].some(Number.isNaN)) return null
  const elapsed = Math.max(MINUTE, now - start)
  return [isoMinute(pStart), isoMinute(Math.min(pStart + elapsed, pLast + 1000))]
}

/** granularity picks the time dimension of the chart for a range of `days` days. */
export function granularity(days) {
  if (days <= 2) return 'hour'
  if (days <= 120) return 'day'
  if (days <= 730) return 'week'
  return 'month'
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** bucketLabel shortens a time bucket of the API ("2026-01-02 13:00:00", "2026-01-02"). */
export function bucketLabel(value, gran, long = false) {
  const [date, time] = value.split(' ')
  const [y, m, d] = date.split('-').map(Number)
  if (gran === 'hour' || gran === 'minute') {
    const hm = (time || '00:00').slice(0, 5)
    return long ? `${d} ${MONTHS[m - 1]}, ${hm}` : hm
  }
  if (gran === 'month') return `${MONTHS[m - 1]} ${y}`
  return long ? `${gran === 'week' ? 'Week of ' : ''}${d} ${MONTHS[m - 1]} ${y}` : `${d} ${MONTHS[m - 1]}`
}

/** rangeLabel describes from..to for the header. */
export function rangeLabel(r) {
  const f = new Date(r.from), t = new Date(r.to)
  const fmt = (d, year) => `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}${year ? ' ' + d.getUTCFullYear() : ''}`
  if (r.from === r.to) return fmt(f, true)
  return `${fmt(f, f.getUTCFullYear() !== t.getUTCFullYear())} – ${fmt(t, true)}`
}
