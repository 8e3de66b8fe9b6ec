// UTC dates and the periods the dashboard offers. The query API works in UTC, so does the
// dashboard: "today" is the current UTC day.

export const DAY = 86_400_000
export const MINUTE = 60_000

/** iso formats a UTC midnight (ms) as YYYY-MM-DD. */
export const iso = (t) => new Date(t).toISOString().slice(0, 10)
/** isoMinute formats a time (ms) as an RFC 3339 timestamp with whole minutes. */
export const isoMinute = (t) => new Date(Math.floor(t / MINUTE) * MINUTE).toISOString().slice(0, 16) + ':00Z'
/** parseDate reads YYYY-MM-DD as UTC midnight (ms), or NaN. */
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
 * resolve turns the period picked in the UI into what the queries use:
 *   range      date_range of the current period, as the API takes it
 *   from, to   first and last day (UTC midnights) of the data shown
 *   days       number of days of the chart's range
 *   prevCards  date_range of the previous period, cut at the same point in time when the
 *              current period runs up to now (today so far vs. yesterday until this time)
 *   prevChart  date_range of the whole previous period, for the chart's comparison line
 *   label      words for the previous period
 */
export function resolve({ period, from: customFrom, to: customTo }, now = Date.now()) {
  const today = startOfDay(now)
  let from, to, range
  switch (period) {
    case 'day': from = to = today; range = 'day'; break
    case '30d': from = today - 29 * DAY; to = today; range = '30d'; break
    case 'month': from = startOfMonth(today); to = endOfMonth(today); range = 'month'; break
    case 'custom': {
      from = parseDate(customFrom)
      to = parseDate(customTo)
      if (!(from <= to)) return resolve({ period: '7d' }, now)
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
  let prevCards = [iso(pFrom), iso(pTo)]
  if (to >= today && from <= today) {
    // The current period is still running: compare with the same stretch of time before.
    const elapsed = Math.max(MINUTE, now - from)
    const end = Math.min(pFrom + elapsed, pTo + DAY)
    prevCards = [isoMinute(pFrom), isoMinute(end)]
  }
  const label = { day: 'yesterday', month: 'last month' }[period] || 'previous period'
  return { period: PERIODS.some(([p]) => p === period) ? period : '7d', range, from, to, days, prevCards, prevChart: [iso(pFrom), iso(pTo)], label }
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
