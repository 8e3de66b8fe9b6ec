// Numbers as a person reads them.

/** compact: 950, 1.2k, 13k, 1.4M. */
export function compact(n) {
  n = Number(n) || 0
  const abs = Math.abs(n)
  if (abs < 1000) return String(Math.round(n * 100) / 100)
  for (const [div, unit] of [[1e9, 'B'], [1e6, 'M'], [1e3, 'k']]) {
    if (abs >= div) {
      const v = n / div
      return (Math.abs(v) < 10 ? v.toFixed(1).replace(/\.0$/, '') : Math.round(v)) + unit
    }
  }
  return String(n)
}

/** full: 12,345 (for titles and tooltips). */
export const full = (n) => (Number(n) || 0).toLocaleString('en-US')

/** duration: 0s, 45s, 3m 05s, 1h 02m. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/** metric formats a value of one of the API's metrics. */
export function metric(name, v) {
  switch (name) {
    case 'bounce_rate': return `${Math.round(Number(v) || 0)}%`
    case 'visit_duration': return duration(v)
    case 'views_per_visit': return (Number(v) || 0).toFixed(2)
    case 'conversion_rate': return `${(Number(v) || 0).toFixed(1)}%`
    default: return compact(v)
  }
}

/**
 * delta compares a metric with its previous value: {text, good, title} or null when there is
 * nothing to compare. Bounce and conversion rate changes are in percentage points; a falling
 * bounce rate is good news.
 */
export function delta(name, cur, prev) {
  cur = Number(cur) || 0
  prev = Number(prev) || 0
  if (name === 'bounce_rate' || name === 'conversion_rate') {
    const d = Math.round(cur - prev)
    const good = d === 0 ? null : name === 'bounce_rate' ? d < 0 : d > 0
    return { text: `${d > 0 ? '↑' : d < 0 ? '↓' : ''}${Math.abs(d)} pp`, good, title: `${Math.round(prev)}% before` }
  }
  if (prev === 0) return cur === 0 ? { text: '0%', good: null, title: 'no change' } : { text: 'new', good: true, title: 'none before' }
  const pct = Math.round(((cur - prev) / prev) * 100)
  return { text: `${pct > 0 ? '↑' : pct < 0 ? '↓' : ''}${Math.abs(pct)}%`, good: pct === 0 ? null : pct > 0, title: `${metric(name, prev)} before` }
}

const regionNames = (() => { try { return new Intl.DisplayNames(['en'], { type: 'region' }) } catch { return null } })()

/** country: "🇩🇪 Germany" for "DE". */
export function country(code) {
  if (!/^[A-Z]{2}$/.test(code || '')) return code
  const flag = String.fromCodePoint(...[...code].map((c) => 0x1f1a5 + c.charCodeAt(0)))
  let name = code
  try { name = regionNames?.of(code) || code } catch {}
  return `${flag} ${name}`
}
