// Visits a tracked test page in Debian's chromium (driven by playwright-core, with the browser
// tests' harness) and waits until the gateway has acknowledged every beacon the visit must
// send. Run by cluster_test.go:
//
//   node browser.mjs <page URL> <gateway URL> <spa navigations> <reloads>
//
// The page at <page URL> carries the tracker snippet pointing at the gateway. The visit is:
// open the page, <spa navigations> history.pushState navigations (/spa/1, /spa/2, ...), one
// custom event ("Cluster test", props {step: "last"}) and <reloads> reloads of the last page.
// It prints one JSON line on stdout: what was acknowledged (2xx), by event name and by
// path, and the page errors seen. It exits non-zero when the acknowledgements do not arrive
// within 60 s.
import { launchBrowser, newContext, sleep } from '../browser/lib/harness.mjs'

const [pageURL, gateway, navArg, reloadArg] = process.argv.slice(2)
const navigations = Number(navArg)
const reloads = Number(reloadArg)
if (!pageURL || !gateway || !Number.isInteger(navigations) || !Number.isInteger(reloads) || navigations < 0 || reloads < 0) {
  console.error('usage: node browser.mjs <page URL> <gateway URL> <spa navigations> <reloads>')
  process.exit(2)
}
const EVENT = 'Cluster test'
const ACK_TIMEOUT_MS = 60_000

// want: acknowledgements the visit must get, as "name path" -> count. The first page is the
// page URL's own path; reloads count the last page again.
const first = new URL(pageURL).pathname
const want = new Map()
const add = (key) => want.set(key, (want.get(key) || 0) + 1)
add(`pageview ${first}`)
let last = first
for (let i = 1; i <= navigations; i++) {
  last = `/spa/${i}`
  add(`pageview ${last}`)
}
add(`${EVENT} ${last}`)
for (let i = 0; i < reloads; i++) add(`pageview ${last}`)

const browser = await launchBrowser()
const { ctx, errors } = await newContext(browser, gateway)
// Acknowledged beacons by "name path" (engagement beacons go out with sendBeacon, whose
// answer nobody sees: they are not counted here nor expected). A beacon the tracker had to
// resend is acknowledged once, by the attempt that got the 2xx.
const acked = new Map()
const failures = []
ctx.on('response', (r) => {
  const req = r.request()
  if (req.method() !== 'POST' || !req.url().startsWith(gateway + '/api/event')) return
  let body
  try { body = JSON.parse(req.postData()) } catch { return }
  if (body.n === 'engagement') return
  const key = `${body.n} ${new URL(body.u).pathname}`
  // A 202 with X-Glimpse-Dropped is an answer, but nothing was counted: not acknowledged.
  const dropped = r.headers()['x-glimpse-dropped']
  if (r.status() >= 200 && r.status() < 300 && !dropped) acked.set(key, (acked.get(key) || 0) + 1)
  else failures.push(`${key}: HTTP ${r.status()}${dropped ? ` dropped: ${dropped}` : ''}`)
})
ctx.on('requestfailed', (req) => {
  if (req.url().startsWith(gateway + '/api/event')) failures.push(`${req.postData()}: ${req.failure()?.errorText}`)
})

const page = await ctx.newPage()
// step runs an action and waits until the beacon it sends (key) is acknowledged once more,
// so each beacon is in before the next step: the order of pages in a visit matters for its
// entry and exit pages.
const asked = new Map()
async function step(key, what, action) {
  const need = (asked.get(key) || 0) + 1
  asked.set(key, need)
  await action()
  const deadline = Date.now() + ACK_TIMEOUT_MS
  while ((acked.get(key) || 0) < need) {
    if (Date.now() > deadline) {
      console.error(`no acknowledgement of ${what} (${key}) within ${ACK_TIMEOUT_MS / 1000}s; acknowledged ${JSON.stringify(Object.fromEntries(acked))}; failures ${JSON.stringify(failures)}`)
      await browser.close()
      process.exit(1)
    }
    await sleep(50)
  }
}

await step(`pageview ${first}`, 'the first page view', () => page.goto(pageURL))
await page.waitForFunction(() => typeof window.glimpse === 'function')
for (let i = 1; i <= navigations; i++) {
  await step(`pageview /spa/${i}`, `navigation ${i}`, () => page.evaluate((p) => history.pushState({}, '', p), `/spa/${i}`))
}
await step(`${EVENT} ${last}`, 'the custom event', () => page.evaluate((name) => window.glimpse(name, { props: { step: 'last' } }), EVENT))
for (let i = 0; i < reloads; i++) {
  await step(`pageview ${last}`, `reload ${i + 1}`, async () => {
    await page.reload()
    await page.waitForFunction(() => typeof window.glimpse === 'function')
  })
}
// Anything more would be a beacon nobody expects: give it a moment to show.
await sleep(500)
await browser.close()

const extra = [...acked].filter(([k, n]) => n !== (want.get(k) || 0))
const result = {
  acknowledged: Object.fromEntries(acked),
  expected: Object.fromEntries(want),
  failures,
  errors,
}
console.log(JSON.stringify(result))
if (extra.length > 0 || errors.length > 0) {
  console.error(`acknowledged counts differ from the expected ones (${JSON.stringify(extra)}) or the page had errors (${JSON.stringify(errors)})`)
  process.exit(1)
}
