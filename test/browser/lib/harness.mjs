// Shared harness of the browser tests: the real glimpse binary on a free port, a small
// static server on another port for the test sites (so the tracker runs cross-origin, as on
// a real site), and Debian's chromium driven by playwright-core.
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:http'
import { createServer as netServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { chromium } from 'playwright-core'

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const artifacts = join(repo, 'test-artifacts')
export { sleep }

// A desktop Chrome User-Agent: the collector drops events from headless browsers as bots,
// so the tests present the browser as an ordinary one. It is set both on the command line
// (requests that outlive their page, such as a beacon sent while navigating away, do not get
// Playwright's per-context override) and per context.
export const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36'

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  `--user-agent=${USER_AGENT}`,
]

export function freePort() {
  return new Promise((ok, fail) => {
    const s = netServer()
    s.on('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => ok(port))
    })
  })
}

// glimpseBinary returns the path of a glimpse binary built from this checkout: $GLIMPSE_BIN
// when run.sh built it already, otherwise it is built once into the temp directory.
export function glimpseBinary() {
  if (process.env.GLIMPSE_BIN && existsSync(process.env.GLIMPSE_BIN)) return process.env.GLIMPSE_BIN
  const out = join(tmpdir(), 'glimpse-browser-tests', 'glimpse')
  mkdirSync(dirname(out), { recursive: true })
  execFileSync('go', ['build', '-o', out, './cmd/glimpse'], { cwd: repo, stdio: 'inherit' })
  process.env.GLIMPSE_BIN = out
  return out
}

// startGlimpse runs `glimpse all` on a free 127.0.0.1 port with a fresh data directory. The
// admin API key it prints on its first start (in the dashboard link) is `key`; `query` sends it.
// sites are added before the start, each as the arguments of `glimpse sites add`
// (['example.org', '--timezone=Europe/Berlin']); other sites are created by their first event.
// goals are added after the sites, each as the arguments of `glimpse sites goals add`
// (['example.org', '--event=Signup']); the site must be among sites.
export async function startGlimpse({ sites = [], goals = [] } = {}) {
  const bin = glimpseBinary()
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'glimpse-browser-data-'))
  for (const args of sites) execFileSync(bin, ['sites', 'add', ...args, `--data-dir=${dataDir}`], { stdio: ['ignore', 'ignore', 'inherit'] })
  for (const args of goals) execFileSync(bin, ['sites', 'goals', 'add', ...args, `--data-dir=${dataDir}`], { stdio: ['ignore', 'ignore', 'inherit'] })
  const url = `http://127.0.0.1:${port}`
  const proc = spawn(bin, [
    'all',
    `--addr=127.0.0.1:${port}`,
    `--data-dir=${dataDir}`,
    '--processor.flush-interval=100ms',
    '--processor.checkpoint-interval=1s',
    '--log.level=warn',
  ], { stdio: ['ignore', 'inherit', 'pipe'] })
  let exited = null
  let output = ''
  proc.stderr.on('data', (chunk) => { output += chunk; process.stderr.write(chunk) })
  proc.on('exit', (code, signal) => { exited = { code, signal } })
  const deadline = Date.now() + 20_000
  let key = null
  for (;;) {
    if (exited) throw new Error(`glimpse exited at start: ${JSON.stringify(exited)}`)
    key = output.match(/\/#key=(glk_[\w-]+)/)?.[1]
    try {
      const r = await fetch(`${url}/readyz`)
      if (r.ok && key) break
    } catch {}
    if (Date.now() > deadline) throw new Error('glimpse did not answer, or print its dashboard link, within 20s')
    await sleep(100)
  }
  const api = {
    url,
    key,
    async query(body, { format } = {}) {
      const r = await fetch(`${url}/api/v1/query${format ? `?format=${format}` : ''}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
        body: JSON.stringify(body),
      })
      const text = await r.text()
      if (!r.ok) throw new Error(`query ${JSON.stringify(body)}: ${r.status} ${text}`)
      return format === 'csv' ? text : JSON.parse(text)
    },
    // counts is what the query API has counted for a site: custom events by name (page views
    // under "pageview"), page views by path, and total visitors.
    async counts(site, range = '7d') {
      const byName = await api.query({ site_id: site, metrics: ['events', 'pageviews'], dimensions: ['event:name'], date_range: range })
      const byPage = await api.query({ site_id: site, metrics: ['pageviews'], dimensions: ['event:page'], date_range: range })
      const total = await api.query({ site_id: site, metrics: ['visitors'], date_range: range })
      const names = {}
      for (const r of byName.results) names[r.dimensions[0]] = r.dimensions[0] === 'pageview' ? r.metrics[1] : r.metrics[0]
      const pages = {}
      for (const r of byPage.results) if (r.metrics[0]) pages[r.dimensions[0]] = r.metrics[0]
      return { names, pages, visitors: total.results[0].metrics[0] }
    },
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM')
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000)
        await new Promise((ok) => (exited ? ok() : proc.once('exit', ok)))
        clearTimeout(t)
      }
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
  return api
}

// settle polls fn until it returns a value that deep-equals want (compared as JSON with
// sorted keys), then checks once more after `hold` ms that nothing else arrived. It returns
// the last value, so a failed assertion shows what was counted instead.
export async function settle(fn, want, { timeout = 15_000, hold = 1_500 } = {}) {
  const norm = (v) => JSON.stringify(v, (k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x))
  const deadline = Date.now() + timeout
  let got
  for (;;) {
    got = await fn()
    if (norm(got) === norm(want)) break
    if (Date.now() > deadline) return got
    await sleep(200)
  }
  await sleep(hold)
  return fn()
}

// startSite serves test pages from memory on a free port. routes maps a path to an HTML
// string or to {status, headers, body}; unknown paths get 404.
export async function startSite() {
  const routes = new Map()
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname
    let r = routes.get(path)
    if (r === undefined) r = { status: 404, body: 'not found' }
    if (typeof r === 'string') r = { body: r }
    res.writeHead(r.status || 200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', ...r.headers })
    res.end(r.body)
  })
  const port = await freePort()
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok))
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    routes,
    stop: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok) }),
  }
}

// trackedPage is an HTML page with the tracker snippet. attrs are extra attributes of the
// script tag; test pages run on 127.0.0.1, which the tracker skips unless data-local is set.
export function trackedPage({ gateway, site, attrs = 'data-local', head = '', body = '' }) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${site}</title>${head}
<script defer data-site="${site}" ${attrs} src="${gateway}/js/glimpse.js"></script></head>
<body>${body}</body></html>`
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS })
}

// newContext opens a browser context that records every beacon sent to the gateway
// (sent: parsed bodies in order) and every page error (errors), which tests expect empty.
export async function newContext(browser, gateway, options = {}) {
  const ctx = await browser.newContext({ userAgent: USER_AGENT, ...options })
  const sent = []
  const errors = []
  ctx.on('request', (r) => {
    if (r.method() === 'POST' && r.url().startsWith(gateway + '/api/event')) {
      try { sent.push(JSON.parse(r.postData())) } catch { sent.push(r.postData()) }
    }
  })
  ctx.on('page', (p) => p.on('pageerror', (e) => errors.push(String(e))))
  return { ctx, sent, errors }
}

// hide and show switch the page's visibility as a tab switch does. Headless Chromium keeps
// every page visible, so the switch is emulated: document.hidden and visibilityState are
// overridden and visibilitychange is dispatched. (Closing a page or navigating away hides it
// for real; the tests do both.)
export async function setHidden(page, hidden) {
  await page.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h })
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') })
    document.dispatchEvent(new Event('visibilitychange'))
  }, hidden)
}
