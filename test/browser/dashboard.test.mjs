// The dashboard in a real browser over data seeded with `glimpse loadgen`: what it shows must
// be what the query API answers, filters must apply to the whole page, CSV must download.
// Screenshots of the main views go to test-artifacts/ at the repository root.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { repo, startGlimpse, launchBrowser, glimpseBinary, artifacts, settle, USER_AGENT } from './lib/harness.mjs'
import { metric, compact } from '../../web/dashboard/src/format.js'
import { rangeLabel, parseDate, iso, DAY } from '../../web/dashboard/src/dates.js'

const SITE = 'example.com'
// A site whose date differs from the UTC date while the tests run: UTC-11 before 11:00 UTC,
// UTC+14 from then on (neither zone has daylight saving time).
const ZONED = 'zoned.example'
const ZONE = new Date().getUTCHours() < 11 ? 'Pacific/Pago_Pago' : 'Pacific/Kiritimati'
// A site with goals: a custom event and two page goals, one named, one by pattern.
const GOALS = 'goals.example'
const GOAL_ARGS = [[GOALS, '--event=Signup'], [GOALS, '--page=/pricing', '--name=Pricing'], [GOALS, '--page=/blog/*']]
let glimpse, browser, expected, expectedZoned

// seed sends loadgen's traffic for one site and waits until the processor has counted
// everything loadgen had acknowledged.
async function seed(site, events, seedValue) {
  const out = execFileSync(glimpseBinary(), ['loadgen', `--target=${glimpse.url}`, `--events=${events}`, `--sites=${site}`, `--seed=${seedValue}`, '--expect'], { encoding: 'utf8' })
  const want = JSON.parse(out.slice(out.indexOf('{')))[site]
  const pv = () => glimpse.query({ site_id: site, metrics: ['visits', 'pageviews', 'events'], date_range: '7d' }).then((r) => r.results[0].metrics)
  assert.deepEqual(await settle(pv, [want.visits, want.pageviews, want.events], { hold: 300 }), [want.visits, want.pageviews, want.events])
  return want
}

before(async () => {
  ;[glimpse, browser] = await Promise.all([startGlimpse({ sites: [[ZONED, `--timezone=${ZONE}`], [GOALS]], goals: GOAL_ARGS }), launchBrowser()])
  expected = await seed(SITE, 3000, 7)
  expectedZoned = await seed(ZONED, 400, 11)
  await seed(GOALS, 600, 13)
  mkdirSync(artifacts, { recursive: true })
})

after(async () => {
  await browser?.close()
  await glimpse?.stop()
})

// openDashboard opens the dashboard in a new context whose browser already holds the admin
// API key (as after opening the link glimpse all prints), unless key is null.
async function openDashboard(path = `/?site=${SITE}`, options = {}, { key = glimpse.key } = {}) {
  const ctx = await browser.newContext({ userAgent: USER_AGENT, viewport: { width: 1280, height: 900 }, acceptDownloads: true, ...options })
  if (key) await ctx.addInitScript((k) => { if (!localStorage.glimpse_key) localStorage.glimpse_key = k }, key)
  const page = await ctx.newPage()
  page.setDefaultTimeout(10_000)
  const errors = []
  page.on('pageerror', (e) => errors.push(String(e)))
  await page.goto(glimpse.url + path)
  return { ctx, page, errors }
}

const ready = (page) => page.waitForSelector('body[data-state=ready]')
async function shot(page, name) {
  await page.evaluate(() => scrollTo(0, 0)) // the sticky header belongs at the top of a full-page shot
  await page.screenshot({ path: join(artifacts, `dashboard-${name}.png`), fullPage: true })
}

const CARD_METRICS = ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate', 'visit_duration']

async function cards(page) {
  return page.$$eval('[data-card] .value', (els) => els.map((e) => [e.dataset.metric, Number(e.dataset.raw), e.textContent]))
}

async function assertCards(page, filters, date_range = '7d', site = SITE) {
  const api = await glimpse.query({ site_id: site, metrics: CARD_METRICS, filters, date_range })
  const want = CARD_METRICS.map((m, i) => [m, api.results[0].metrics[i], metric(m, api.results[0].metrics[i])])
  assert.deepEqual(await cards(page), want, `headline numbers for ${JSON.stringify(filters)}`)
}

// assertVisitors allows the unique-visitor sketches their error: a few hundred visitors are
// counted almost exactly, but two visitor ids may share a sketch slot, and large sets are
// estimated with ~0.8 % standard error (docs/metrics.md). The
// cards themselves are compared with the API exactly (assertCards).
function assertVisitors(got, want, what) {
  assert.ok(Math.abs(got - want) <= Math.max(2, Math.ceil(want * 0.02)), `${what}: ${got}, want ${want} within 2 %`)
}

async function rows(page, panel) {
  return page.$$eval(`[data-panel="${panel}"] .body .row[data-value]`, (els) =>
    els.map((e) => [e.dataset.value, ...[...e.querySelectorAll('.num')].map((n) => n.textContent)]))
}

test('the gateway serves the committed dashboard build at /', async () => {
  const served = await (await fetch(`${glimpse.url}/`)).text()
  assert.equal(served, readFileSync(join(repo, 'web/dashboard/dist/index.html'), 'utf8'))
})

test('headline numbers, top lists, goals, chart and realtime match the query API', async () => {
  const { ctx, page, errors } = await openDashboard()
  await ready(page)
  await shot(page, 'overview')

  await assertCards(page, [])
  const [visitors] = (await cards(page))[0].slice(1)
  assertVisitors(visitors, expected.visitors, 'the seeded visitors')

  const top = async (dim, metrics) => (await glimpse.query({ site_id: SITE, metrics, dimensions: [dim], date_range: '7d', limit: 10 })).results
  const pages = await top('event:page', ['visitors', 'pageviews'])
  assert.deepEqual(await rows(page, 'pages'), pages.map((r) => [r.dimensions[0], compact(r.metrics[0]), compact(r.metrics[1])]))
  const sources = await top('visit:source', ['visitors', 'bounce_rate'])
  assert.deepEqual(await rows(page, 'sources'), sources.map((r) => [r.dimensions[0], compact(r.metrics[0]), metric('bounce_rate', r.metrics[1])]))
  const browsers = await top('visit:browser', ['visitors'])
  assert.deepEqual(await rows(page, 'devices'), browsers.map((r) => [r.dimensions[0], compact(r.metrics[0])]))
  const slices = await page.$$eval('[data-panel=devices] .donut-box .legend li', (els) => els.map((e) => e.textContent))
  assert.equal(slices.length, browsers.length, 'one donut slice per browser')

  const goals = (await top('event:name', ['visitors', 'events'])).filter((r) => r.dimensions[0] !== 'pageview')
  assert.ok(goals.length > 0)
  assert.deepEqual(await rows(page, 'goals'), goals.map((r) => [r.dimensions[0], compact(r.metrics[0]), compact(r.metrics[1]), metric('conversion_rate', (r.metrics[0] / visitors) * 100)]))
  assert.match(await page.textContent('[data-panel=goals] [data-hint=goals]'), /glimpse sites goals add example\.com/, 'a site without goals is told how to add them')

  // Entry pages on their tab.
  await page.click('[data-panel=pages] [role=tab]:has-text("Entry pages")')
  await page.waitForSelector('[data-panel=pages]:not(.loading) .row.head :text("Entry page")')
  const entries = await top('visit:entry_page', ['visitors', 'visits'])
  assert.deepEqual(await rows(page, 'pages'), entries.map((r) => [r.dimensions[0], compact(r.metrics[0]), compact(r.metrics[1])]))
  await page.click('[data-panel=pages] [role=tab]:has-text("Top pages")')

  // The chart: one point per day of the last 7 days, visitors and pageviews.
  const series = await page.$$eval('#chart polyline', (els) => els.map((e) => e.getAttribute('class') + ':' + e.getAttribute('points').trim().split(/\s+/).length))
  assert.deepEqual(series.sort(), ['line pageviews:7', 'line previous dashed:7', 'line visitors:7'])
  await page.hover('#chart svg', { position: { x: 1000, y: 120 } })
  assert.match(await page.textContent('#chart .tooltip'), /Visitors: [\d,]+/)

  const rt = await (await fetch(`${glimpse.url}/api/v1/realtime?site_id=${SITE}`, { headers: { Authorization: `Bearer ${glimpse.key}` } })).json()
  await page.waitForFunction(() => document.querySelector('[data-testid=realtime]').textContent !== '–')
  assert.equal(Number((await page.textContent('[data-testid=realtime]')).replace(/,/g, '')), rt.visitors)
  // The visit-length histogram shows the API's visits per duration bucket.
  const buckets = await top('visit:duration_bucket', ['visits'])
  const durations = await page.textContent('[data-panel=durations]')
  assert.ok(buckets.length > 0, 'the API has duration buckets')
  for (const b of buckets) {
    const label = { 0: '0–10s', 10: '10–30s', 30: '30s–1m', 60: '1–3m', 180: '3–10m', 600: '10–30m', 1800: '30m+' }[b.dimensions[0]]
    assert.match(durations, new RegExp(`${label}: ${b.metrics[0].toLocaleString('en-US')} visits`))
  }
  await ctx.close()
  assert.deepEqual(errors, [])
})

test('clicking a row filters the whole dashboard; filters combine, come off, and follow history', async () => {
  const { ctx, page, errors } = await openDashboard()
  await ready(page)
  await page.click('[data-panel=pages] .row[data-value="/pricing"]')
  await page.waitForSelector('.chip[data-filter="event:page"]')
  await ready(page)
  assert.match(page.url(), /[?&]f=is%2Cevent%3Apage%2C%2Fpricing/)
  await assertCards(page, [['is', 'event:page', ['/pricing']]])
  const src = await glimpse.query({ site_id: SITE, metrics: ['visitors', 'bounce_rate'], dimensions: ['visit:source'], filters: [['is', 'event:page', ['/pricing']]], date_range: '7d', limit: 10 })
  assert.deepEqual(await rows(page, 'sources'), src.results.map((r) => [r.dimensions[0], compact(r.metrics[0]), metric('bounce_rate', r.metrics[1])]))

  await page.click('[data-panel=sources] .row[data-value="Google"]')
  await page.waitForSelector('.chip[data-filter="visit:source"]')
  await ready(page)
  const both = [['is', 'event:page', ['/pricing']], ['is', 'visit:source', ['Google']]]
  await assertCards(page, both)
  await shot(page, 'filtered')

  await page.click('.chip[data-filter="event:page"] button')
  await page.waitForSelector('.chip[data-filter="event:page"]', { state: 'detached' })
  await ready(page)
  await assertCards(page, [['is', 'visit:source', ['Google']]])

  await page.goBack()
  await page.waitForSelector('.chip[data-filter="event:page"]')
  await ready(page)
  await assertCards(page, both)
  await ctx.close()
  assert.deepEqual(errors, [])
})

test('goal properties: pick a goal, name a property, see its values', async () => {
  const { ctx, page, errors } = await openDashboard()
  await ready(page)
  await page.click('[data-panel=goals] .row[data-value="Signup"]')
  await page.waitForSelector('.props[data-goal="Signup"]')
  await page.fill('.add-prop input', 'plan')
  await page.click('.add-prop button')
  await page.waitForSelector('.props .row[data-value]')
  await ready(page)
  const want = await glimpse.query({ site_id: SITE, metrics: ['visitors', 'events'], dimensions: ['event:props:plan'], filters: [['is', 'event:name', ['Signup']]], date_range: '7d', limit: 10 })
  const got = await page.$$eval('.props .row[data-value]', (els) => els.map((e) => [e.dataset.value, ...[...e.querySelectorAll('.num')].map((n) => n.textContent)]))
  assert.deepEqual(got, want.results.map((r) => [r.dimensions[0], compact(r.metrics[0]), compact(r.metrics[1])]))
  await assertCards(page, [['is', 'event:name', ['Signup']]])
  await shot(page, 'goal-properties')
  await ctx.close()
  assert.deepEqual(errors, [])
})

test('a site with goals: the panel lists them as the API does; a goal filters every panel', async () => {
  const goalQuery = (filters = []) => glimpse.query({ site_id: GOALS, metrics: ['visitors', 'events', 'conversion_rate'], dimensions: ['event:goal'], filters, date_range: '7d', limit: 30 })
  const goalRows = (res) => res.results.map((r) => [r.dimensions[0], compact(r.metrics[0]), compact(r.metrics[1]), metric('conversion_rate', r.metrics[2])])
  const want = await goalQuery()
  assert.deepEqual(want.results.map((r) => r.dimensions[0]).sort(), ['Pricing', 'Signup', 'Visit /blog/*'])
  assert.ok(want.results.every((r) => r.metrics[0] > 0), `every goal has conversions: ${JSON.stringify(want.results)}`)

  const { ctx, page, errors } = await openDashboard(`/?site=${GOALS}`)
  await ready(page)
  assert.deepEqual(await rows(page, 'goals'), goalRows(want))
  assert.equal(await page.$$eval('[data-panel=goals] [data-hint=goals]', (els) => els.length), 0, 'no hint on adding goals when there are some')

  // Every part of the page loads under a goal filter, with the goal's numbers.
  const noFailures = async (what) => {
    assert.deepEqual(await page.$$eval('.failed, .error', (els) => els.map((e) => e.textContent)), [], `no part failed ${what}`)
    assert.equal(await page.$$eval('#chart polyline.visitors', (els) => els.length), 1, `the chart is drawn ${what}`)
  }
  for (const [goal, eventGoal] of [['Signup', true], ['Pricing', false]]) {
    await page.click(`[data-panel=goals] .row[data-value="${goal}"]`)
    await page.waitForSelector(`.chip[data-filter="event:goal"] :text("${goal}")`)
    await ready(page)
    const filters = [['is', 'event:goal', [goal]]]
    await noFailures(`with the goal ${goal}`)
    const api = (await glimpse.query({ site_id: GOALS, metrics: ['visitors', 'events', 'conversion_rate'], filters, date_range: '7d' })).results[0].metrics
    assert.deepEqual(await cards(page), ['visitors', 'events', 'conversion_rate'].map((m, i) => [m, api[i], metric(m, api[i])]), `headline numbers of ${goal}`)
    assert.ok(api[0] > 0)
    const sources = await glimpse.query({ site_id: GOALS, metrics: ['visitors', 'conversion_rate'], dimensions: ['visit:source'], filters, date_range: '7d', limit: 10 })
    assert.deepEqual(await rows(page, 'sources'), sources.results.map((r) => [r.dimensions[0], compact(r.metrics[0]), metric('conversion_rate', r.metrics[1])]), `sources of ${goal}`)
    assert.deepEqual(await rows(page, 'goals'), goalRows(await goalQuery(filters)))
    assert.equal(await page.$$eval(`.props[data-goal="${goal}"]`, (els) => els.length), eventGoal ? 1 : 0, `properties box for ${goal}`)
    if (eventGoal) await shot(page, 'goal-filter')
    await page.click('.chip[data-filter="event:goal"] button')
    await page.waitForSelector('.chip[data-filter="event:goal"]', { state: 'detached' })
    await ready(page)
  }

  // The properties of an event goal, under its goal filter.
  await page.click('[data-panel=goals] .row[data-value="Signup"]')
  await page.waitForSelector('.props[data-goal="Signup"]')
  await page.fill('.add-prop input', 'plan')
  await page.click('.add-prop button')
  await page.waitForSelector('.props .row[data-value]')
  await ready(page)
  const plans = await glimpse.query({ site_id: GOALS, metrics: ['visitors', 'events'], dimensions: ['event:props:plan'], filters: [['is', 'event:goal', ['Signup']]], date_range: '7d', limit: 10 })
  assert.ok(plans.results.length > 0)
  const got = await page.$$eval('.props .row[data-value]', (els) => els.map((e) => [e.dataset.value, ...[...e.querySelectorAll('.num')].map((n) => n.textContent)]))
  assert.deepEqual(got, plans.results.map((r) => [r.dimensions[0], compact(r.metrics[0]), compact(r.metrics[1])]))
  await page.click(`.props .row[data-value="${plans.results[0].dimensions[0]}"]`)
  await page.waitForSelector('.chip[data-filter="event:props:plan"]')
  await ready(page)
  await noFailures('with the goal and a property filter')
  await ctx.close()
  assert.deepEqual(errors, [])
})

test('CSV export downloads the table the API would give', async () => {
  const { ctx, page, errors } = await openDashboard(`/?site=${SITE}&f=is,visit:device,Desktop`)
  await ready(page)
  for (const [panel, dims, metrics] of [
    ['pages', ['event:page'], ['visitors', 'pageviews']],
    ['sources', ['visit:source'], ['visitors', 'bounce_rate']],
    ['goals', ['event:name'], ['visitors', 'events']],
  ]) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(`[data-panel=${panel}] .csv`)])
    assert.match(download.suggestedFilename(), new RegExp(`^glimpse-example.com-.+\\.csv$`))
    const text = readFileSync(await download.path(), 'utf8')
    const want = await glimpse.query({ site_id: SITE, metrics, dimensions: dims, filters: [['is', 'visit:device', ['Desktop']]], date_range: '7d' }, { format: 'csv' })
    assert.equal(text, want, `${panel} CSV`)
    assert.ok(text.split('\n').length > 2)
  }
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#chart-csv')])
  assert.match(readFileSync(await download.path(), 'utf8'), /^time:day,visitors,pageviews\n/)
  await ctx.close()
  assert.deepEqual(errors, [])
})

test('periods: today with the comparison to yesterday, a custom range, comparison off', async () => {
  const { ctx, page, errors } = await openDashboard()
  await ready(page)
  await page.selectOption('#period', 'day')
  await page.waitForURL(/period=day/)
  await ready(page)
  await assertCards(page, [], 'day')
  assert.equal(await page.$$eval('#chart polyline.visitors', (els) => els[0].getAttribute('points').trim().split(/\s+/).length), 24, 'hourly buckets')
  assert.match(await page.textContent('[data-card=visitors] .delta'), /vs yesterday/)
  await shot(page, 'today')

  const today = new Date().toISOString().slice(0, 10)
  const weekAgo = new Date(Date.now() - 6 * 86400000).toISOString().slice(0, 10)
  await page.selectOption('#period', 'custom')
  await page.waitForSelector('#custom:not([hidden])')
  await page.fill('#from', weekAgo)
  await page.fill('#to', today)
  await page.waitForURL(new RegExp(`from=${weekAgo}&to=${today}`))
  await ready(page)
  await assertCards(page, [], [weekAgo, today])

  await page.uncheck('#compare')
  await page.waitForURL(/compare=0/)
  await ready(page)
  assert.equal(await page.$$eval('[data-card] .delta', (els) => els.length), 0)
  assert.equal(await page.$$eval('#chart polyline.previous', (els) => els.length), 0)
  await ctx.close()
  assert.deepEqual(errors, [])
})

test('a site in another time zone: today, its date, its hours and yesterday are the site\'s', async () => {
  const day = await glimpse.query({ site_id: ZONED, metrics: ['visitors'], date_range: 'day' })
  const today = day.query.date_range[0].slice(0, 10)
  const utcToday = new Date().toISOString().slice(0, 10)
  assert.notEqual(today, utcToday, `the site's date in ${ZONE} (${day.query.date_range[0]}) differs from the UTC date`)
  const yesterday = iso(parseDate(today) - DAY)
  const yesterdayStart = Date.parse((await glimpse.query({ site_id: ZONED, metrics: ['visitors'], date_range: [yesterday, yesterday] })).query.date_range[0])

  const { ctx, page, errors } = await openDashboard(`/?site=${ZONED}&period=day`)
  await ready(page)
  const sent = []
  page.on('request', (r) => { if (r.url().endsWith('/api/v1/query')) sent.push(JSON.parse(r.postData())) })
  await page.reload()
  await ready(page)
  await shot(page, 'today-zoned')

  await assertCards(page, [], 'day', ZONED)
  assertVisitors((await cards(page))[0][1], expectedZoned.visitors, 'the seeded visitors are today\'s in any zone')
  assert.equal(await page.textContent('#range-label'), rangeLabel({ from: parseDate(today), to: parseDate(today) }), 'the header shows the site\'s date')
  assert.match(await page.textContent('#zone-note'), new RegExp(`\\(UTC\\${day.query.date_range[0].slice(19)} today\\)`), 'the footer names the zone\'s offset')
  const hours = await glimpse.query({ site_id: ZONED, metrics: ['visitors'], dimensions: ['time:hour'], date_range: 'day', include: { empty_buckets: true } })
  assert.equal(await page.$$eval('#chart polyline.visitors', (els) => els[0].getAttribute('points').trim().split(/\s+/).length), hours.results.length, 'one point per hour of the site\'s day')

  // "vs yesterday" compares with the site's yesterday from its midnight, as long as today has run.
  assert.match(await page.textContent('[data-card=visitors] .delta'), /vs yesterday/)
  const cuts = sent.filter((q) => q.site_id === ZONED && Array.isArray(q.date_range) && q.date_range[0].includes('T'))
  assert.equal(cuts.length, 1, `one query of yesterday until this time: ${JSON.stringify(sent.map((q) => q.date_range))}`)
  const [from, to] = cuts[0].date_range.map(Date.parse)
  assert.equal(from, yesterdayStart, `yesterday starts at ${new Date(yesterdayStart).toISOString()} in ${ZONE}, the dashboard asked from ${cuts[0].date_range[0]}`)
  const elapsed = Date.now() - Date.parse(day.query.date_range[0])
  assert.ok(to - from <= elapsed && to - from > elapsed - 5 * 60_000, `yesterday until this time: ${cuts[0].date_range} after ${elapsed} ms of today`)
  await ctx.close()
  assert.deepEqual(errors, [])
})

test('an API key from the link is kept and sent; a refused key brings up the key form', async () => {
  // The link glimpse all prints on its first start.
  const { ctx, page, errors } = await openDashboard(`/?site=example.com#key=${glimpse.key}`, {}, { key: null })
  const auth = []
  page.on('request', (r) => { if (r.url().includes('/api/v1/')) auth.push(r.headers().authorization) })
  await ready(page)
  assert.equal(new URL(page.url()).hash, '', 'the key leaves the address bar')
  assert.equal(await page.evaluate(() => localStorage.glimpse_key), glimpse.key)
  await page.reload()
  await ready(page)
  assert.ok(auth.length > 5 && auth.every((a) => a === `Bearer ${glimpse.key}`), `Authorization headers: ${[...new Set(auth)]}`)

  // A key the server does not know (revoked, or from another Glimpse) is refused.
  await page.evaluate(() => { localStorage.glimpse_key = 'glk_000000000000_wrong' })
  await page.reload()
  await page.waitForSelector('#key-dialog[open]')
  await shot(page, 'key-form')
  await page.fill('#key-input', glimpse.key)
  await page.click('#key-form button[type=submit]')
  await page.waitForSelector('#key-dialog[open]', { state: 'detached' })
  await ready(page)
  await assertCards(page, [])
  assert.equal(await page.evaluate(() => localStorage.glimpse_key), glimpse.key)
  await ctx.close()
  assert.deepEqual(errors, [])
})

test('the visit-duration histogram draws the buckets when the API offers them', async () => {
  const { ctx, page, errors } = await openDashboard('/', { colorScheme: 'dark' })
  await ctx.route(`${glimpse.url}/api/v1/query`, async (route) => {
    const body = route.request().postData() || ''
    if (!body.includes('visit:duration_bucket')) return route.continue()
    const counts = { 0: 310, 10: 120, 30: 90, 60: 140, 180: 160, 600: 90, 1800: 47 }
    await route.fulfill({ contentType: 'application/json', body: JSON.stringify({ results: Object.entries(counts).map(([k, v]) => ({ dimensions: [k], metrics: [v] })), meta: {}, query: {} }) })
  })
  await ready(page)
  await shot(page, 'welcome')
  await page.fill('#welcome-form input', SITE)
  await page.click('#welcome-form button')
  await ready(page)
  assert.equal(await page.$$eval('[data-panel=durations] rect.bar', (els) => els.length), 7)
  assert.match(await page.textContent('[data-panel=durations]'), /30m\+/)
  await shot(page, 'dark-histogram')
  await ctx.close()
  assert.deepEqual(errors, [])
})
