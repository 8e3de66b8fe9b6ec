// The tracker in a real browser against the real glimpse binary: what a site owner's page
// sends, and what the query API then counts — exactly once, nothing lost, nothing extra.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  repo, startGlimpse, startSite, launchBrowser, newContext, trackedPage, settle, setHidden, sleep,
} from './lib/harness.mjs'

let glimpse, site, browser

before(async () => {
  ;[glimpse, site, browser] = await Promise.all([startGlimpse(), startSite(), launchBrowser()])
})

after(async () => {
  await browser?.close()
  await site?.stop()
  await glimpse?.stop()
})

const page = (opts) => trackedPage({ gateway: glimpse.url, ...opts })
const names = (sent) => sent.map((b) => b.n)

// closePage closes a page as a person closes a tab: it is hidden, and its last beacon leaves.
// The pause lets that beacon get out before the test tears the whole browser context down.
async function closePage(p) {
  await p.close()
  await sleep(300)
}
const pathOf = (u) => new URL(u).pathname

// expectNothingSent waits a while and checks that no beacon left the browser and that the
// site has no data.
async function expectNothingSent(sent, siteId) {
  await sleep(700)
  assert.deepEqual(sent, [], 'no beacon should have been sent')
  const c = await glimpse.counts(siteId)
  assert.deepEqual(c.names, {}, 'nothing should be counted')
}

test('the gateway serves the committed tracker build', async () => {
  const served = await (await fetch(`${glimpse.url}/js/glimpse.js`)).text()
  assert.equal(served, readFileSync(join(repo, 'web/tracker/dist/glimpse.js'), 'utf8'))
})

test('page views, SPA navigations, custom events, clicks and engagement are counted exactly once', async () => {
  const id = 'flow.test'
  const other = site.url.replace('127.0.0.1', 'localhost') // another host: an outbound link
  const body = `
    <button id="settings" onclick="history.pushState({}, '', '/shop/settings')">Settings</button>
    <button id="query" onclick="history.replaceState({}, '', '/shop/settings?tab=2')">Tab 2</button>
    <button id="billing" onclick="history.pushState({}, '', '/shop/billing')">Billing</button>
    <button id="signup" onclick="glimpse('Signup', {props: {plan: 'pro'}, revenue: {amount: 9.99, currency: 'EUR'}})">Sign up</button>
    <button id="share" class="btn glimpse-event-name=Share glimpse-event-network=Mastodon+Social"><span id="share-label">Share</span></button>
    <a id="download" href="/files/report.pdf?token=1">Report (PDF)</a>
    <a id="mail" href="mailto:team@example.com">Mail us</a>
    <a id="outbound" href="${other}/landing">Partner</a>`
  site.routes.set('/shop', page({ site: id, attrs: 'data-local data-outbound data-downloads', body }))
  site.routes.set('/files/report.pdf', { headers: { 'Content-Type': 'application/pdf', 'Content-Disposition': 'attachment; filename="report.pdf"' }, body: '%PDF-1.4\n' })
  site.routes.set('/landing', '<!doctype html><title>Partner</title><p>Partner site</p>')

  const { ctx, sent, errors } = await newContext(browser, glimpse.url, { acceptDownloads: true })
  const p = await ctx.newPage()
  const step = async (fn) => { await fn(); await sleep(150) }
  await step(() => p.goto(`${site.url}/shop`))
  await step(() => p.click('#settings'))
  await step(() => p.click('#query')) // same path: no new page view
  await step(() => p.click('#signup'))
  await step(() => p.click('#share-label')) // a click inside the tagged element
  await step(() => p.click('#billing'))
  await step(() => p.goBack()) // popstate back to /shop/settings
  await step(() => setHidden(p, true)) // tab switch: engagement so far, sent as a beacon
  await step(() => setHidden(p, false))
  await step(async () => {
    const download = p.waitForEvent('download')
    await p.click('#download')
    await download
  })
  await step(() => p.click('#mail')) // not outbound: no host
  await Promise.all([p.waitForURL(`${other}/landing`), p.click('#outbound')]) // leaves the page: engagement on the way out
  await sleep(300)
  await ctx.close()

  const want = [
    ['pageview', '/shop'],
    ['engagement', '/shop'], ['pageview', '/shop/settings'],
    ['Signup', '/shop/settings'],
    ['Share', '/shop/settings'],
    ['engagement', '/shop/settings'], ['pageview', '/shop/billing'],
    ['engagement', '/shop/billing'], ['pageview', '/shop/settings'],
    ['engagement', '/shop/settings'], // hidden
    ['File Download', '/shop/settings'],
    ['Outbound Link: Click', '/shop/settings'],
    ['engagement', '/shop/settings'], // left for the partner site
  ]
  // The beacon sent while the page unloads is not always reported to the test by the browser
  // (its page is gone); the query API below shows that it arrived.
  const wire = sent.map((b) => [b.n, pathOf(b.u)])
  assert.deepEqual(wire, want.slice(0, wire.length), 'beacons sent, in order')
  assert.ok(wire.length >= want.length - 1, `${wire.length} beacons seen`)
  assert.deepEqual(errors, [])
  for (const b of sent) {
    assert.equal(b.d, id)
    assert.equal(b.vid, undefined, 'cookieless by default')
    if (b.n === 'engagement') assert.ok(b.e > 0 && b.e < 60_000, `engagement time ${b.e} ms`)
  }
  const signup = sent.find((b) => b.n === 'Signup')
  assert.deepEqual(signup.p, { plan: 'pro' })
  assert.deepEqual(signup.$, { amount: 9.99, currency: 'EUR' })
  assert.deepEqual(sent.find((b) => b.n === 'Share').p, { network: 'Mastodon Social' })
  assert.deepEqual(sent.find((b) => b.n === 'File Download').p, { url: `${site.url}/files/report.pdf?token=1` })
  assert.deepEqual(sent.find((b) => b.n === 'Outbound Link: Click').p, { url: `${other}/landing` })

  const got = await settle(() => glimpse.counts(id), {
    names: { pageview: 4, Signup: 1, Share: 1, 'File Download': 1, 'Outbound Link: Click': 1 },
    pages: { '/shop': 1, '/shop/settings': 2, '/shop/billing': 1 },
    visitors: 1,
  })
  assert.deepEqual(got, {
    names: { pageview: 4, Signup: 1, Share: 1, 'File Download': 1, 'Outbound Link: Click': 1 },
    pages: { '/shop': 1, '/shop/settings': 2, '/shop/billing': 1 },
    visitors: 1,
  })
  const plan = await glimpse.query({ site_id: id, metrics: ['events'], dimensions: ['event:props:plan'], filters: [['is', 'event:name', ['Signup']]], date_range: '7d' })
  assert.deepEqual(plan.results, [{ dimensions: ['pro'], metrics: [1] }])
  const network = await glimpse.query({ site_id: id, metrics: ['events'], dimensions: ['event:props:network'], filters: [['is', 'event:name', ['Share']]], date_range: '7d' })
  assert.deepEqual(network.results, [{ dimensions: ['Mastodon Social'], metrics: [1] }])
})

test('engagement time makes a one-page visit last as long as it was seen', async () => {
  const id = 'engage.test'
  site.routes.set('/read', page({ site: id }))
  const { ctx, sent, errors } = await newContext(browser, glimpse.url)
  const p = await ctx.newPage()
  await p.goto(`${site.url}/read`)
  await sleep(2200)
  await closePage(p) // hides the page for real: the engagement beacon goes out while it closes
  await ctx.close()
  assert.deepEqual(errors, [])
  assert.deepEqual(names(sent).filter((n) => n === 'pageview'), ['pageview'])
  const want = { names: { pageview: 1 }, pages: { '/read': 1 }, visitors: 1 }
  assert.deepEqual(await settle(() => glimpse.counts(id), want), want)
  const m = await glimpse.query({ site_id: id, metrics: ['visits', 'bounce_rate', 'visit_duration'], date_range: '7d' })
  const [visits, bounceRate, duration] = m.results[0].metrics
  assert.equal(visits, 1)
  assert.equal(bounceRate, 100, 'engagement is not an interaction: still a bounce')
  assert.ok(duration >= 2 && duration <= 4, `visit_duration ${duration}s should be the ~2s the page was visible`)
})

test('hash routing counts fragment changes as pages only when data-hash is set', async () => {
  site.routes.set('/app', page({ site: 'hash.test', attrs: 'data-local data-hash' }))
  site.routes.set('/plain', page({ site: 'nohash.test' }))
  const { ctx, sent, errors } = await newContext(browser, glimpse.url)
  const p = await ctx.newPage()
  await p.goto(`${site.url}/app#/inbox`)
  await sleep(150)
  await p.evaluate(() => { location.hash = '#/settings' })
  await sleep(150)
  await p.evaluate(() => history.pushState(null, '', '#/about'))
  await sleep(150)
  await p.evaluate(() => { location.hash = '#/about' }) // same page again: nothing new
  await sleep(150)
  await p.goto(`${site.url}/plain#top`)
  await sleep(150)
  await p.evaluate(() => { location.hash = '#middle' })
  await sleep(300)
  await closePage(p)
  await ctx.close()
  assert.deepEqual(errors, [])
  const hashed = sent.filter((b) => b.d === 'hash.test' && b.n === 'pageview')
  assert.deepEqual(hashed.map((b) => new URL(b.u).hash), ['#/inbox', '#/settings', '#/about'])
  assert.ok(hashed.every((b) => b.h === true))
  const want = { names: { pageview: 3 }, pages: { '/app#/inbox': 1, '/app#/settings': 1, '/app#/about': 1 }, visitors: 1 }
  assert.deepEqual(await settle(() => glimpse.counts('hash.test'), want), want)
  const plain = { names: { pageview: 1 }, pages: { '/plain': 1 }, visitors: 1 }
  assert.deepEqual(await settle(() => glimpse.counts('nohash.test'), plain), plain)
})

test('404 pages, calls made before the script loaded, and a second copy of the script', async () => {
  const id = 'misc.test'
  const stub = `<script>window.glimpse = window.glimpse || function () { (glimpse.q = glimpse.q || []).push(arguments) };
    glimpse('Early', {props: {when: 'before load'}})</script>`
  site.routes.set('/missing', {
    status: 404,
    body: page({
      site: id,
      attrs: 'data-local data-404',
      head: stub + `<script defer data-site="${id}" data-local data-404 src="${glimpse.url}/js/glimpse.js"></script>`,
      body: `<button onclick="glimpse(); glimpse(null); glimpse('Bad', null); var o = {}; o.o = o; glimpse('Cyclic', {props: o, callback: function () { document.title = 'called' }})">odd calls</button>`,
    }),
  })
  const { ctx, sent, errors } = await newContext(browser, glimpse.url)
  const p = await ctx.newPage()
  await p.goto(`${site.url}/missing`)
  await sleep(200)
  await p.click('button')
  await sleep(200)
  assert.equal(await p.title(), 'called', 'the callback runs even when the event cannot be sent')
  await closePage(p)
  await ctx.close()
  assert.deepEqual(errors, [], 'odd calls never throw into the page')
  assert.deepEqual(names(sent).filter((n) => n !== 'engagement').sort(), ['404', 'Bad', 'Early', 'pageview'])
  const want = { names: { pageview: 1, 404: 1, Early: 1, Bad: 1 }, pages: { '/missing': 1 }, visitors: 1 }
  assert.deepEqual(await settle(() => glimpse.counts(id), want), want)
})

test('nothing is sent on localhost without data-local, with DNT/GPC when the site honours them, or after opting out', async () => {
  site.routes.set('/local', page({ site: 'local.test', attrs: '', body: `<button onclick="glimpse('Click', {callback: function () { document.title = 'done' }})">go</button>` }))
  site.routes.set('/dnt', page({ site: 'dnt.test', attrs: 'data-local data-dnt', body: `<button onclick="glimpse('Click')">go</button>` }))
  site.routes.set('/dnt-ignored', page({ site: 'dnt-ignored.test' }))
  site.routes.set('/optout', page({ site: 'optout.test', body: `<button onclick="glimpse('Click')">go</button>` }))

  // localhost
  {
    const { ctx, sent, errors } = await newContext(browser, glimpse.url)
    const p = await ctx.newPage()
    await p.goto(`${site.url}/local`)
    await p.click('button')
    await p.evaluate(() => history.pushState({}, '', '/local/next'))
    assert.equal(await p.title(), 'done', 'callbacks still run')
    await ctx.close()
    assert.deepEqual(errors, [])
    await expectNothingSent(sent, 'local.test')
  }
  // Do-Not-Track, then Global Privacy Control
  for (const [what, init] of [
    ['DNT', () => Object.defineProperty(Navigator.prototype, 'doNotTrack', { configurable: true, get: () => '1' })],
    ['GPC', () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { configurable: true, get: () => true })],
  ]) {
    const { ctx, sent, errors } = await newContext(browser, glimpse.url)
    await ctx.addInitScript(init)
    const p = await ctx.newPage()
    await p.goto(`${site.url}/dnt`)
    await p.click('button')
    await p.evaluate(() => history.pushState({}, '', '/dnt/next'))
    await sleep(100)
    assert.deepEqual(sent, [], `${what}: nothing sent`)
    // A site without data-dnt still counts the visit.
    await p.goto(`${site.url}/dnt-ignored`)
    await sleep(300)
    await closePage(p)
    await ctx.close()
    assert.deepEqual(errors, [])
    assert.deepEqual(sent.map((b) => [b.n, b.d]).filter(([n]) => n !== 'engagement'), [['pageview', 'dnt-ignored.test']], `${what}: only the site that does not honour it`)
    assert.ok(sent.every((b) => b.d === 'dnt-ignored.test'))
  }
  await expectNothingSent([], 'dnt.test')
  const ignored = { names: { pageview: 2 }, pages: { '/dnt-ignored': 2 }, visitors: 1 }
  assert.deepEqual(await settle(() => glimpse.counts('dnt-ignored.test'), ignored), ignored)

  // opt-out flag in localStorage, then opting back in
  {
    const { ctx, sent, errors } = await newContext(browser, glimpse.url)
    const p = await ctx.newPage()
    await p.goto(`${site.url}/optout`)
    await sleep(200)
    assert.deepEqual(names(sent), ['pageview'])
    await p.evaluate(() => { localStorage.glimpse_ignore = 'true' })
    await p.click('button')
    await p.reload()
    await p.evaluate(() => history.pushState({}, '', '/optout/next'))
    await sleep(300)
    assert.deepEqual(names(sent), ['pageview'], 'nothing after opting out')
    await p.evaluate(() => { localStorage.removeItem('glimpse_ignore') })
    await p.goto(`${site.url}/optout`)
    await sleep(300)
    await ctx.close()
    assert.deepEqual(errors, [])
    assert.deepEqual(names(sent).filter((n) => n !== 'engagement'), ['pageview', 'pageview'])
  }
})

test('cookie mode sets a first-party id once and reuses it; the default sets no cookie', async () => {
  site.routes.set('/c', page({ site: 'cookie.test', attrs: 'data-local data-cookie' }))
  site.routes.set('/n', page({ site: 'nocookie.test' }))
  const visit = async () => {
    const { ctx, sent, errors } = await newContext(browser, glimpse.url)
    const p = await ctx.newPage()
    await p.goto(`${site.url}/c`)
    await p.evaluate(() => history.pushState({}, '', '/c/next'))
    await p.reload()
    await p.goto(`${site.url}/n`)
    await sleep(300)
    const cookies = await ctx.cookies()
    await ctx.close()
    assert.deepEqual(errors, [])
    return { sent, cookies }
  }
  const a = await visit()
  const b = await visit()
  for (const v of [a, b]) {
    const ids = v.sent.filter((x) => x.d === 'cookie.test').map((x) => x.vid)
    assert.ok(ids.length >= 3 && ids.every((x) => x === ids[0]) && /^\d{4,40}$/.test(ids[0]), `one id per browser: ${ids}`)
    assert.deepEqual(v.cookies.map((c) => [c.name, c.value]), [['glimpse_id', ids[0]]])
    assert.ok(v.cookies[0].expires > Date.now() / 1000 + 300 * 86400, 'kept for a year')
    assert.ok(v.sent.filter((x) => x.d === 'nocookie.test').every((x) => x.vid === undefined))
  }
  assert.notEqual(a.sent[0].vid, b.sent[0].vid)
  // Same address and browser: one visitor without cookies, two with them.
  await settle(() => glimpse.counts('cookie.test').then((c) => c.visitors), 2)
  assert.equal((await glimpse.counts('cookie.test')).visitors, 2)
  assert.equal((await settle(() => glimpse.counts('nocookie.test').then((c) => c.names.pageview), 2)), 2)
  assert.equal((await glimpse.counts('nocookie.test')).visitors, 1)
})

// failFirst answers the first n page-view beacons of a context with 503, as a collector does
// when the bus cannot take an event, and lets everything else through to the real gateway.
// With how = 'abort' the request fails as on a lost connection instead. attempts records the
// bodies, and at[i] when attempt i came (ms).
async function failFirst(ctx, n, how = '503') {
  const attempts = []
  const at = []
  let failed = 0
  await ctx.route(`${glimpse.url}/api/event`, async (route) => {
    const body = JSON.parse(route.request().postData())
    attempts.push(body)
    at.push(Date.now())
    if (body.n === 'pageview' && failed++ < n) {
      if (how === 'abort') return route.abort('connectionreset')
      await route.fulfill({ status: 503, headers: { 'Access-Control-Allow-Origin': '*', 'Retry-After': '1', 'Content-Type': 'application/json' }, body: '{"error":"retry shortly"}' })
    } else {
      await route.continue()
    }
  })
  attempts.at = at
  return attempts
}

test('the collector answers 503 twice, then 202: the event arrives exactly once', async () => {
  const id = 'retry.test'
  site.routes.set('/r', page({ site: id }))
  const { ctx, errors } = await newContext(browser, glimpse.url)
  const attempts = await failFirst(ctx, 2)
  const p = await ctx.newPage()
  await p.goto(`${site.url}/r`)
  const deadline = Date.now() + 10_000
  while (attempts.length < 3 && Date.now() < deadline) await sleep(100)
  await sleep(500)
  assert.equal(await p.evaluate(() => sessionStorage.glimpse_q), '[]', 'the retry queue is empty')
  await closePage(p)
  await ctx.close()
  assert.deepEqual(errors, [])
  assert.deepEqual(attempts.map((b) => [b.n, pathOf(b.u)]), [['pageview', '/r'], ['pageview', '/r'], ['pageview', '/r']])
  assert.ok(attempts.every((b) => JSON.stringify(b) === JSON.stringify(attempts[0])), 'the same event each time')
  const gaps = attempts.at.slice(1).map((t, i) => t - attempts.at[i])
  assert.ok(gaps.every((g) => g >= 900 && g < 4000), `retries wait for Retry-After (1 s): gaps ${gaps} ms`)
  const want = { names: { pageview: 1 }, pages: { '/r': 1 }, visitors: 1 }
  assert.deepEqual(await settle(() => glimpse.counts(id), want), want)
})

test('a failed event waits in sessionStorage across a navigation and arrives exactly once', async () => {
  const id = 'retry-nav.test'
  site.routes.set('/a', page({ site: id }))
  site.routes.set('/b', page({ site: id }))
  const { ctx, errors } = await newContext(browser, glimpse.url)
  const attempts = await failFirst(ctx, 2)
  const p = await ctx.newPage()
  await p.goto(`${site.url}/a`)
  await p.waitForFunction(() => JSON.parse(sessionStorage.glimpse_q || '[]').length === 1)
  await p.goto(`${site.url}/b`) // before the retry timer fires
  const deadline = Date.now() + 10_000
  while (attempts.filter((b) => b.n === 'pageview').length < 4 && Date.now() < deadline) await sleep(100)
  await sleep(500)
  assert.equal(await p.evaluate(() => sessionStorage.glimpse_q), '[]')
  await closePage(p)
  await ctx.close()
  assert.deepEqual(errors, [])
  // /a fails on page a, fails again from page b, then gets through; /b gets through at once.
  assert.deepEqual(attempts.filter((b) => b.n === 'pageview').map((b) => pathOf(b.u)), ['/a', '/a', '/b', '/a'])
  const want = { names: { pageview: 2 }, pages: { '/a': 1, '/b': 1 }, visitors: 1 }
  assert.deepEqual(await settle(() => glimpse.counts(id), want), want)
})

test('a lost connection is retried too, and the event arrives exactly once', async () => {
  const id = 'retry-net.test'
  site.routes.set('/n', page({ site: id }))
  const { ctx, errors } = await newContext(browser, glimpse.url)
  const attempts = await failFirst(ctx, 1, 'abort')
  const p = await ctx.newPage()
  await p.goto(`${site.url}/n`)
  const deadline = Date.now() + 10_000
  while (attempts.length < 2 && Date.now() < deadline) await sleep(100)
  await sleep(300)
  await closePage(p)
  await ctx.close()
  assert.deepEqual(errors, [])
  assert.deepEqual(attempts.filter((b) => b.n === 'pageview').map((b) => pathOf(b.u)), ['/n', '/n'])
  const want = { names: { pageview: 1 }, pages: { '/n': 1 }, visitors: 1 }
  assert.deepEqual(await settle(() => glimpse.counts(id), want), want)
})
