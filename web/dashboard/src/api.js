// The dashboard's only way to data: the public query API of the same origin
// (POST /api/v1/query, GET /api/v1/realtime, CSV with ?format=csv). When the API asks for a
// key, it is taken once — from a link carrying #key=... or from the key form — kept in this
// browser's localStorage and sent as "Authorization: Bearer <key>".

const KEY = 'glimpse_key'

export class AuthError extends Error {}
export class ApiError extends Error {
  constructor(message, status) {
    super(message)
    this.status = status
  }
}

/** takeKeyFromUrl stores a key passed as #key=... and removes it from the address bar. */
export function takeKeyFromUrl() {
  const m = location.hash.match(/[#&]key=([^&]*)/)
  if (!m) return false
  setKey(decodeURIComponent(m[1]))
  const rest = location.hash.replace(/[#&]key=[^&]*/, '').replace(/^&/, '')
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''))
  return true
}

export function getKey() {
  try { return localStorage.getItem(KEY) || '' } catch { return '' }
}

export function setKey(key) {
  try { key ? localStorage.setItem(KEY, key) : localStorage.removeItem(KEY) } catch {}
}

const sleep = (ms, signal) => new Promise((ok, fail) => {
  const t = setTimeout(ok, ms)
  signal?.addEventListener('abort', () => { clearTimeout(t); fail(new DOMException('aborted', 'AbortError')) })
})

async function call(path, init = {}) {
  const headers = { ...init.headers }
  const key = getKey()
  if (key) headers.Authorization = `Bearer ${key}`
  let res
  // A busy server (429 rate limit, 503 overloaded) says when to come back: try twice more.
  for (let attempt = 0; ; attempt++) {
    res = await fetch(path, { ...init, headers })
    if ((res.status !== 429 && res.status !== 503) || attempt === 2) break
    await sleep(Math.min(10, Number(res.headers.get('Retry-After')) || 1) * 1000, init.signal)
  }
  if (res.status === 401 || res.status === 403) {
    throw new AuthError(key ? 'The API key was refused.' : 'This dashboard needs an API key.')
  }
  if (!res.ok) {
    let msg = ''
    try { msg = (await res.json()).error } catch {}
    throw new ApiError(msg || `${res.status} ${res.statusText}`, res.status)
  }
  return res
}

/** query answers one query of the API (see docs/api.md). */
export async function query(q, signal) {
  const res = await call('/api/v1/query', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(q),
    signal,
  })
  return res.json()
}

/** realtime is the number of visitors in the last five minutes. */
export async function realtime(site, signal) {
  const res = await call(`/api/v1/realtime?site_id=${encodeURIComponent(site)}`, { signal })
  return (await res.json()).visitors
}

/** downloadCsv saves the CSV answer of a query as a file. */
export async function downloadCsv(q, name) {
  const res = await call('/api/v1/query?format=csv', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/csv' },
    body: JSON.stringify(q),
  })
  const blob = await res.blob()
  const cd = res.headers.get('Content-Disposition') || ''
  const fromServer = cd.match(/filename="([^"]+)"/)
  const a = document.createElement('a')
  a.href = URL.createObjectURL(blob)
  a.download = name ? `${name}.csv` : fromServer ? fromServer[1] : 'glimpse.csv'
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
}
