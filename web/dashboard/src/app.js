// Glimpse dashboard: one page over the public query API (docs/api.md). Its state — site,
// period, comparison, filters — lives in the address, so a view can be bookmarked, shared
// and left with the back button.
import { query, realtime, downloadCsv, takeKeyFromUrl, getKey, setKey, AuthError, ApiError } from './api.js'
import { resolve, siteDay, soFar, granularity, bucketLabel, rangeLabel, PERIODS, iso, startOfDay } from './dates.js'
import { compact, full, metric, delta, country, duration } from './format.js'
import { lineChart, donut, histogram } from './charts.js'

const $ = (sel, root = document) => root.querySelector(sel)

/** h builds an element: h('a.cls', {href}, 'text', child). */
function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split('.')
  const el = document.createElement(name)
  if (classes.length) el.className = classes.join(' ')
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else if (k === 'style') el.style.cssText = v
    else el.setAttribute(k, v === true ? '' : v)
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false))
  return el
}

// ---- What the dashboard shows -------------------------------------------------------------

const CARDS = [
  ['visitors', 'Unique visitors'],
  ['visits', 'Total visits'],
  ['pageviews', 'Total pageviews'],
  ['views_per_visit', 'Views per visit'],
  ['bounce_rate', 'Bounce rate'],
  ['visit_duration', 'Visit duration'],
]
// With a goal filter the API reports only goal metrics (docs/api.md, "Goals"): visits,
// bounces and durations belong to visits, not goals.
const GOAL_CARDS = [
  ['visitors', 'Unique conversions'],
  ['events', 'Total conversions'],
  ['conversion_rate', 'Conversion rate'],
]

const DIMENSIONS = {
  'event:page': 'Page',
  'event:name': 'Goal',
  'event:goal': 'Goal',
  'event:hostname': 'Hostname',
  'visit:entry_page': 'Entry page',
  'visit:exit_page': 'Exit page',
  'visit:source': 'Source',
  'visit:referrer': 'Referrer',
  'visit:utm_campaign': 'UTM campaign',
  'visit:utm_source': 'UTM source',
  'visit:utm_medium': 'UTM medium',
  'visit:utm_term': 'UTM term',
  'visit:utm_content': 'UTM content',
  'visit:country': 'Country',
  'visit:region': 'Region',
  'visit:city': 'City',
  'visit:browser': 'Browser',
  'visit:os': 'Operating system',
  'visit:device': 'Device',
}
const dimLabel = (d) => DIMENSIONS[d] || (d.startsWith('event:props:') ? `Property ${d.slice(12)}` : d)

/** display turns a dimension value into words; "" means none. */
function display(dim, v) {
  if (v === '') {
    if (dim === 'visit:source' || dim === 'visit:referrer') return 'Direct / None'
    if (dim.startsWith('visit:country') || dim === 'visit:region' || dim === 'visit:city') return 'Unknown'
    return '(none)'
  }
  if (dim === 'visit:country') return country(v)
  return v
}

// Panels of top lists; each tab is one breakdown.
const PANELS = [
  {
    id: 'pages', title: 'Pages', tabs: [
      { label: 'Top pages', dim: 'event:page', metrics: ['visitors', 'pageviews'], heads: ['Visitors', 'Pageviews'] },
      { label: 'Entry pages', dim: 'visit:entry_page', metrics: ['visitors', 'visits'], heads: ['Visitors', 'Entrances'] },
      { label: 'Exit pages', dim: 'visit:exit_page', metrics: ['visitors', 'visits'], heads: ['Visitors', 'Exits'] },
    ],
  },
  {
    id: 'sources', title: 'Sources', tabs: [
      { label: 'Sources', dim: 'visit:source', metrics: ['visitors', 'bounce_rate'], heads: ['Visitors', 'Bounce'] },
      { label: 'Referrers', dim: 'visit:referrer', metrics: ['visitors', 'bounce_rate'], heads: ['Visitors', 'Bounce'] },
      { label: 'Campaigns', dim: 'visit:utm_campaign', metrics: ['visitors', 'bounce_rate'], heads: ['Visitors', 'Bounce'] },
      { label: 'UTM sources', dim: 'visit:utm_source', metrics: ['visitors', 'bounce_rate'], heads: ['Visitors', 'Bounce'] },
      { label: 'UTM mediums', dim: 'visit:utm_medium', metrics: ['visitors', 'bounce_rate'], heads: ['Visitors', 'Bounce'] },
    ],
  },
  {
    id: 'locations', title: 'Locations', tabs: [
      { label: 'Countries', dim: 'visit:country', metrics: ['visitors'], heads: ['Visitors'] },
      { label: 'Regions', dim: 'visit:region', metrics: ['visitors'], heads: ['Visitors'] },
      { label: 'Cities', dim: 'visit:city', metrics: ['visitors'], heads: ['Visitors'] },
    ],
  },
  {
    id: 'devices', title: 'Devices', donut: true, tabs: [
      { label: 'Browsers', dim: 'visit:browser', metrics: ['visitors'], heads: ['Visitors'] },
      { label: 'OS', dim: 'visit:os', metrics: ['visitors'], heads: ['Visitors'] },
      { label: 'Devices', dim: 'visit:device', metrics: ['visitors'], heads: ['Visitors'] },
    ],
  },
]

// Events the tracker sends that are not goals of the site.
const NOT_GOALS = new Set(['pageview', 'engagement'])
// Properties Glimpse's tracker attaches to its own events.
const BUILTIN_PROPS = { 'File Download': ['url'], 'Outbound Link: Click': ['url'] }

// Visit-duration buckets as proposed for the query API: the dimension's values are the lower
// bounds in seconds.
const DURATION_DIM = 'visit:duration_bucket'
const DURATION_BUCKETS = [['0', '0–10s'], ['10', '10–30s'], ['30', '30s–1m'], ['60', '1–3m'], ['180', '3–10m'], ['600', '10–30m'], ['1800', '30m+']]
let durationsSupported = true

// ---- State in the address ------------------------------------------------------------------

let state = readState()

function readState() {
  const p = new URLSearchParams(location.search)
  const filters = p.getAll('f').map((f) => {
    const i = f.indexOf(','), j = f.indexOf(',', i + 1)
    return i > 0 && j > i ? [f.slice(0, i), f.slice(i + 1, j), [f.slice(j + 1)]] : null
  }).filter(Boolean)
  return {
    site: (p.get('site') || '').trim(),
    period: p.get('period') || '7d',
    from: p.get('from') || '',
    to: p.get('to') || '',
    compare: p.get('compare') !== '0',
    filters,
  }
}

function writeState(next, push = true) {
  state = { ...state, ...next }
  const p = new URLSearchParams()
  if (state.site) p.set('site', state.site)
  if (state.period !== '7d') p.set('period', state.period)
  if (state.period === 'custom') { p.set('from', state.from); p.set('to', state.to) }
  if (!state.compare) p.set('compare', '0')
  for (const [op, dim, [v]] of state.filters) p.append('f', `${op},${dim},${v}`)
  const url = `${location.pathname}${p.toString() ? '?' + p : ''}${location.hash}`
  if (url !== location.pathname + location.search + location.hash) history[push ? 'pushState' : 'replaceState'](null, '', url)
  render()
}

function setFilter(dim, value) {
  const filters = state.filters.filter((f) => f[1] !== dim)
  filters.push(['is', dim, [value]])
  writeState({ filters })
}

function removeFilter(dim) {
  writeState({ filters: state.filters.filter((f) => f[1] !== dim) })
}

addEventListener('popstate', () => { state = readState(); render() })

// ---- Recent sites --------------------------------------------------------------------------

function recentSites() {
  try { return JSON.parse(localStorage.getItem('glimpse_sites') || '[]').filter((s) => typeof s === 'string') } catch { return [] }
}
function rememberSite(site) {
  const list = [site, ...recentSites().filter((s) => s !== site)].slice(0, 12)
  try { localStorage.setItem('glimpse_sites', JSON.stringify(list)) } catch {}
}

// ---- The site's date -----------------------------------------------------------------------

// Days are those of the site's time zone. The site's current date is read from the API's
// answer to a "day" query and kept until that day ends there.
const siteDays = new Map() // site → {today, until} (see siteDay)

/** knownToday is the site's date when known, otherwise the UTC date. */
function knownToday(site = state.site) {
  const d = siteDays.get(site)
  return d && Date.now() < d.until ? d.today : startOfDay(Date.now())
}

/** siteToday asks the API for the site's date unless it is known. A failure falls back to
 * the UTC date: the panels' own queries then fail the same way and say why. */
async function siteToday(site, signal) {
  const d = siteDays.get(site)
  if (d && Date.now() < d.until) return d.today
  try {
    const day = siteDay(await query({ site_id: site, metrics: ['visitors'], date_range: 'day' }, signal))
    if (day) siteDays.set(site, day)
  } catch (err) {
    if (err.name === 'AbortError') throw err
  }
  return knownToday(site)
}

/** zoneNote says in the footer which zone the numbers are counted in. */
function zoneNote(site = state.site) {
  const d = siteDays.get(site)
  $('#zone-note').textContent = d ? `Glimpse · times in the site's time zone (${d.zone} today)` : "Glimpse · times in each site's time zone"
}

/** currentView is the period the page shows, in the site's days. */
const currentView = () => resolve(state, knownToday())

// ---- API key -------------------------------------------------------------------------------

let askingKey = false
function askKey(message) {
  if (askingKey) return
  askingKey = true
  const dlg = $('#key-dialog')
  $('#key-why').textContent = message
  $('#key-input').value = ''
  dlg.showModal()
}

function keySaved(ev) {
  ev.preventDefault()
  const key = $('#key-input').value.trim()
  if (!key) return
  setKey(key)
  $('#key-dialog').close()
  askingKey = false
  render()
}

function showKeyState() {
  $('#forget-key').hidden = !getKey()
}

// ---- Rendering -----------------------------------------------------------------------------

let generation = 0
let controller = null
let chartData = null
let cardsPromise = null
const activeTab = { pages: 0, sources: 0, locations: 0, devices: 0 }
let activeProp = ''

/** run loads one part of the page, ignoring answers of superseded renders. */
async function run(box, gen, fn) {
  box.classList.add('loading')
  try {
    await fn()
    if (gen === generation) box.classList.remove('loading', 'failed')
  } catch (err) {
    if (gen !== generation || err.name === 'AbortError') return
    box.classList.remove('loading')
    if (err instanceof AuthError) { askKey(err.message); return }
    box.classList.add('failed')
    const body = $('.body', box) || box
    body.textContent = ''
    body.append(h('p.error', {}, err.message))
  }
}

/** goalFilter is the view's filter on one of the site's goals, if any. */
const goalFilter = () => state.filters.find((f) => f[1] === 'event:goal')

function baseQuery(r) {
  return { site_id: state.site, filters: state.filters, date_range: r.range }
}

function csvName(part, r) {
  return `glimpse-${state.site}-${part}-${iso(r.from)}-${iso(r.to)}`.replace(/[^\w.-]+/g, '_')
}

function render() {
  const gen = ++generation
  controller?.abort()
  controller = new AbortController()
  const signal = controller.signal
  renderControls()
  showKeyState()
  const hasSite = !!state.site
  $('#welcome').hidden = hasSite
  $('#board').hidden = !hasSite
  startRealtime()
  zoneNote()
  if (!hasSite) { renderWelcome(); document.body.dataset.state = 'ready'; return }
  document.title = `${state.site} · Glimpse`
  renderFilters()

  document.body.dataset.state = 'loading'
  siteToday(state.site, signal).then((today) => {
    if (gen !== generation) return
    const r = resolve(state, today)
    $('#range-label').textContent = rangeLabel(r)
    zoneNote()
    cardsPromise = renderCards(r, gen, signal)
    Promise.allSettled([
      cardsPromise,
      renderChart(r, gen, signal),
      ...PANELS.map((def) => renderPanel(def, r, gen, signal)),
      renderGoals(r, gen, signal),
      renderDurations(r, gen, signal),
    ]).then(() => { if (gen === generation) document.body.dataset.state = 'ready' })
  }, () => {}) // aborted by a newer render
}

function renderControls() {
  $('#site').value = state.site
  const dl = $('#sites')
  dl.textContent = ''
  for (const s of recentSites()) dl.append(h('option', { value: s }))
  $('#period').value = state.period
  const custom = state.period === 'custom'
  $('#custom').hidden = !custom
  if (custom) {
    const r = resolve(state, knownToday())
    $('#from').value = iso(r.from)
    $('#to').value = iso(r.to)
  }
  $('#compare').checked = state.compare
}

function renderWelcome() {
  document.title = 'Glimpse'
  $('#snippet').textContent = `<script defer data-site="example.com" src="${location.origin}/js/glimpse.js"></script>`
  const list = $('#recent')
  list.textContent = ''
  for (const s of recentSites()) {
    list.append(h('li', {}, h('a', { href: `?site=${encodeURIComponent(s)}`, onclick: (e) => { e.preventDefault(); writeState({ site: s, filters: [] }) } }, s)))
  }
}

function renderFilters() {
  const box = $('#filters')
  box.textContent = ''
  for (const [, dim, [v]] of state.filters) {
    box.append(h('span.chip', { 'data-filter': dim },
      h('span', {}, `${dimLabel(dim)} is `, h('b', {}, display(dim, v))),
      h('button', { type: 'button', title: 'Remove filter', 'aria-label': `Remove filter ${dimLabel(dim)}`, onclick: () => removeFilter(dim) }, '×')))
  }
  if (state.filters.length > 1) box.append(h('button.clear', { type: 'button', onclick: () => writeState({ filters: [] }) }, 'Clear all'))
  box.hidden = !state.filters.length
}

async function renderCards(r, gen, signal) {
  const box = $('#cards')
  const cards = goalFilter() ? GOAL_CARDS : CARDS
  const metrics = cards.map(([m]) => m)
  let cur = null
  await run(box, gen, async () => {
    // The API compares with the whole previous period; while the current one is still
    // running, the previous one is cut at the same point (today so far vs. yesterday until
    // this time), where the API's answer says each period starts.
    const include = state.compare ? { comparisons: { mode: 'custom', date_range: r.prev } } : undefined
    const now = await query({ ...baseQuery(r), metrics, include }, signal)
    const cut = state.compare && r.running ? soFar(now) : null
    const before = cut ? await query({ ...baseQuery(r), metrics, date_range: cut }, signal) : null
    if (gen !== generation) return
    cur = now.results[0]?.metrics || metrics.map(() => 0)
    const prev = cut ? before.results[0]?.metrics : now.results[0]?.comparison?.metrics
    const nothingBefore = prev && !prev[0] && !prev[1]
    box.textContent = ''
    cards.forEach(([m, label], i) => {
      const d = !prev ? null : nothingBefore ? { text: '–', good: null, title: 'no visits' } : delta(m, cur[i], prev[i])
      box.append(h('div.card', { 'data-card': m },
        h('span.label', {}, label),
        h('b.value', { 'data-metric': m, 'data-raw': cur[i], title: m === 'visit_duration' ? `${full(cur[i])} seconds` : full(cur[i]) }, metric(m, cur[i])),
        d ? h(`span.delta${d.good === true ? '.up' : d.good === false ? '.down' : ''}`, { title: `${d.title} (${r.label})` }, d.text, h('small', {}, ` vs ${r.label}`)) : null))
    })
    rememberSite(state.site)
  })
  return cur
}

async function renderChart(r, gen, signal) {
  const panel = $('#chart-panel')
  const box = $('#chart')
  const gran = granularity(r.days)
  // A goal's completions take the place of page views when a goal filter is active.
  const second = goalFilter() ? ['events', 'Conversions'] : ['pageviews', 'Pageviews']
  const q = { ...baseQuery(r), metrics: ['visitors', second[0]], dimensions: [`time:${gran}`], include: { empty_buckets: true } }
  $('#legend-second').textContent = second[1]
  $('#chart-csv').onclick = () => exportCsv(q, csvName('visitors', r))
  await run(panel, gen, async () => {
    const compared = state.compare ? { ...q, include: { ...q.include, comparisons: { mode: 'custom', date_range: r.prev } } } : q
    const now = await query(compared, signal)
    if (gen !== generation) return
    const rows = now.results
    // Buckets are compared by position; those past the end of a shorter previous period
    // have no comparison.
    const before = state.compare ? rows.map((x) => x.comparison).filter(Boolean) : null
    chartData = {
      labels: rows.map((x) => bucketLabel(x.dimensions[0], gran)),
      titles: rows.map((x) => bucketLabel(x.dimensions[0], gran, true)),
      series: [
        { name: 'Visitors', cls: 'visitors', area: true, values: rows.map((x) => x.metrics[0]) },
        { name: second[1], cls: 'pageviews', values: rows.map((x) => x.metrics[1]) },
      ],
    }
    if (before) {
      chartData.series.push({ name: `Visitors (${r.label})`, cls: 'previous', dashed: true, values: before.map((x) => x.metrics[0]), titles: before.map((x) => bucketLabel(x.dimensions[0], gran, true)) })
    }
    $('#legend-previous').hidden = !before
    $('#legend-previous-label').textContent = `Visitors, ${r.label}`
    lineChart(box, chartData)
  })
}

function panelShell(def) {
  const panel = $(`[data-panel="${def.id}"]`)
  if (panel.dataset.ready) return panel
  panel.dataset.ready = '1'
  panel.append(
    h('header', {},
      h('h2', {}, def.title),
      h('div.tabs', { role: 'tablist' }, def.tabs.map((t, i) => h('button', { type: 'button', role: 'tab', 'data-tab': i, onclick: () => { activeTab[def.id] = i; renderPanel(def, currentView(), generation, controller.signal) } }, t.label))),
      h('button.csv', { type: 'button', title: 'Download this table as CSV' }, 'CSV')),
    ...(def.donut ? [h('div.donut-box')] : []),
    h('div.body'))
  return panel
}

function rowsList(dim, rows, heads, fmt, onpick) {
  const max = Math.max(1, ...rows.map((x) => x.metrics[0]))
  return h('div.list', {},
    h('div.row.head', {}, h('span.cell', {}, h('span.label', {}, dimLabel(dim))), heads.map((t) => h('span.num', {}, t))),
    rows.map((x) => {
      const v = x.dimensions[0]
      return h('button.row', { type: 'button', 'data-value': v, title: `Filter by ${dimLabel(dim)}: ${display(dim, v)}`, onclick: () => onpick(v) },
        h('span.cell', {},
          h('span.bar', { style: `width:${((x.metrics[0] / max) * 100).toFixed(1)}%` }),
          h('span.label', {}, display(dim, v))),
        x.metrics.map((m, i) => h('span.num', { title: full(m) }, fmt(i, m))))
    }))
}

async function renderPanel(def, r, gen, signal) {
  const panel = panelShell(def)
  const tab = def.tabs[activeTab[def.id]]
  panel.querySelectorAll('[role=tab]').forEach((b, i) => b.setAttribute('aria-selected', String(i === activeTab[def.id])))
  // With a goal filter each row says how many of its visitors converted, and what share.
  const goal = !!goalFilter()
  const metrics = goal ? ['visitors', 'conversion_rate'] : tab.metrics
  const heads = goal ? ['Conversions', 'CR'] : tab.heads
  const q = { ...baseQuery(r), metrics, dimensions: [tab.dim], limit: 10 }
  $('.csv', panel).onclick = () => exportCsv({ ...q, limit: undefined }, csvName(tab.label.toLowerCase().replace(/\s+/g, '-'), r))
  await run(panel, gen, async () => {
    const res = await query(q, signal)
    if (gen !== generation || tab !== def.tabs[activeTab[def.id]]) return
    const body = $('.body', panel)
    body.textContent = ''
    if (!res.results.length) body.append(h('p.empty', {}, 'No data for this period'))
    else body.append(rowsList(tab.dim, res.results, heads, (i, m) => metric(metrics[i], m), (v) => setFilter(tab.dim, v)))
    if (def.id === 'locations' && res.results.length && res.results.every((x) => x.dimensions[0] === '')) body.append(noLocationHint())
    if (def.donut) {
      const box = $('.donut-box', panel)
      donut(box, res.results.map((x) => ({ label: display(tab.dim, x.dimensions[0]), value: x.metrics[0] })))
      box.setAttribute('aria-label', `${tab.label} share`)
    }
  })
}

/** noLocationHint explains an all-"Unknown" location panel: the server has no geoip.db. */
function noLocationHint() {
  return h('p.note', { 'data-hint': 'geoip' }, 'No location data: start Glimpse with ',
    h('code', {}, '--geoip.db=/path/GeoLite2-City.mmdb'), ' (free from MaxMind or DB-IP)')
}

function storedProps() {
  try { return JSON.parse(localStorage.getItem(`glimpse_props:${state.site}`) || '[]') } catch { return [] }
}
function storeProp(key) {
  const keys = [...new Set([...storedProps(), key])].slice(0, 20)
  try { localStorage.setItem(`glimpse_props:${state.site}`, JSON.stringify(keys)) } catch {}
}

// The site's goals (docs/api.md, "Goals") are listed with their conversion rates from the
// API. A site without goals gets its custom events by name instead, with the rate worked out
// here, and a hint on adding goals.
const GOAL_METRICS = ['visitors', 'events', 'conversion_rate']

/** noGoals reports whether err is the API's answer for a site that has no goals. */
const noGoals = (err) => err instanceof ApiError && err.status === 400 && /has no goals/.test(err.message)

async function renderGoals(r, gen, signal) {
  const panel = $('[data-panel="goals"]')
  const body = $('.body', panel)
  const q = { ...baseQuery(r), metrics: GOAL_METRICS, dimensions: ['event:goal'], limit: 30 }
  $('.csv', panel).onclick = () => exportCsv({ ...q, limit: undefined }, csvName('goals', r))
  await run(panel, gen, async () => {
    let res
    try {
      res = await query(q, signal)
    } catch (err) {
      if (!noGoals(err)) throw err
      return renderEventGoals(r, gen, signal)
    }
    if (gen !== generation) return
    $('.hint', panel).textContent = 'conversions'
    body.textContent = ''
    if (!res.results.length) body.append(h('p.empty', {}, 'No conversions in this period'))
    else body.append(rowsList('event:goal', res.results, ['Uniques', 'Total', 'CR'], (i, m) => (i === 2 ? metric('conversion_rate', m) : compact(m)), (v) => setFilter('event:goal', v)))
    const goal = goalFilter()?.[2][0]
    if (goal !== undefined && await isEventGoal(goal, r, signal) && gen === generation) {
      body.append(await goalProps(goal, r, gen, signal))
    }
  })
}

/** isEventGoal reports whether goal counts custom events: only a page goal is completed by
 * page views. A goal without completions in the period counts as an event goal. */
async function isEventGoal(goal, r, signal) {
  const res = await query({ ...baseQuery(r), filters: [['is', 'event:goal', [goal]]], metrics: ['events'], dimensions: ['event:name'] }, signal)
  return !res.results.some((x) => x.dimensions[0] === 'pageview')
}

async function renderEventGoals(r, gen, signal) {
  const panel = $('[data-panel="goals"]')
  const body = $('.body', panel)
  const q = { ...baseQuery(r), metrics: ['visitors', 'events'], dimensions: ['event:name'], limit: 30 }
  $('.csv', panel).onclick = () => exportCsv({ ...q, limit: undefined }, csvName('goals', r))
  const goal = state.filters.find((f) => f[1] === 'event:name')?.[2][0]
  // Conversion rate: converted visitors over all visitors of the view without the goal filter.
  const goalFree = state.filters.filter((f) => !f[1].startsWith('event:name') && !f[1].startsWith('event:props:'))
  const [res, totals] = await Promise.all([
    query(q, signal),
    goalFree.length === state.filters.length ? cardsPromise : query({ ...baseQuery(r), filters: goalFree, metrics: ['visitors'] }, signal).then((x) => x.results[0]?.metrics),
  ])
  if (gen !== generation) return
  $('.hint', panel).textContent = 'custom events'
  const all = totals?.[0] || 0
  const rows = res.results.filter((x) => !NOT_GOALS.has(x.dimensions[0])).slice(0, 10)
    .map((x) => ({ dimensions: x.dimensions, metrics: [...x.metrics, all ? (x.metrics[0] / all) * 100 : 0] }))
  body.textContent = ''
  if (!rows.length) body.append(h('p.empty', {}, 'No custom events in this period. Send some with glimpse("Signup") — see docs/tracker.md.'))
  else body.append(rowsList('event:name', rows, ['Uniques', 'Total', 'CR'], (i, m) => (i === 2 ? metric('conversion_rate', m) : compact(m)), (v) => setFilter('event:name', v)))
  body.append(h('p.note', { 'data-hint': 'goals' }, 'Count conversions with goals: ', h('code', {}, `glimpse sites goals add ${state.site} --event=Signup`), ' (or --page=/pricing)'))
  if (goal !== undefined) body.append(await goalProps(goal, r, gen, signal))
}

/** goalProps breaks the events of the goal the view is filtered by down by a property. */
async function goalProps(goal, r, gen, signal) {
  const keys = [...new Set([...(BUILTIN_PROPS[goal] || []), ...storedProps()])]
  if (!keys.includes(activeProp)) activeProp = keys[0] || ''
  const box = h('div.props', { 'data-goal': goal })
  const add = h('form.add-prop', {
    onsubmit: (e) => {
      e.preventDefault()
      const k = e.target.elements.key.value.trim()
      if (!k) return
      storeProp(k)
      activeProp = k
      renderGoals(currentView(), generation, controller.signal)
    },
  }, h('input', { name: 'key', placeholder: 'property name', 'aria-label': 'Show a property', size: 12 }), h('button', { type: 'submit' }, 'Show'))
  box.append(h('h3', {}, `Properties of “${goal}”`),
    h('div.tabs', {}, keys.map((k) => h('button', { type: 'button', 'aria-selected': String(k === activeProp), onclick: () => { activeProp = k; renderGoals(currentView(), generation, controller.signal) } }, k)), add))
  if (!activeProp) {
    box.append(h('p.empty', {}, 'Name a property the event carries (e.g. plan) to break it down.'))
    return box
  }
  const dim = `event:props:${activeProp}`
  const q = { ...baseQuery(r), metrics: ['visitors', 'events'], dimensions: [dim], limit: 10 }
  const res = await query(q, signal)
  if (gen !== generation) return box
  box.append(h('button.csv', { type: 'button', onclick: () => exportCsv({ ...q, limit: undefined }, csvName(`prop-${activeProp}`, r)) }, 'CSV'))
  if (!res.results.length) box.append(h('p.empty', {}, 'No values'))
  else box.append(rowsList(dim, res.results, ['Uniques', 'Total'], (i, m) => compact(m), (v) => setFilter(dim, v)))
  return box
}

async function renderDurations(r, gen, signal) {
  const panel = $('[data-panel="durations"]')
  const body = $('.body', panel)
  await run(panel, gen, async () => {
    if (goalFilter()) {
      body.textContent = ''
      body.append(h('p.empty', {}, 'Visit durations belong to visits, not goals: remove the goal filter to see them.'))
      return
    }
    const mean = cardsPromise.then((c) => c?.[5])
    if (!durationsSupported) {
      body.textContent = ''
      body.append(unsupportedDurations(await mean))
      return
    }
    let res
    try {
      res = await query({ ...baseQuery(r), metrics: ['visits'], dimensions: [DURATION_DIM] }, signal)
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 400 && err.message.includes(DURATION_DIM))) throw err
      durationsSupported = false
      if (gen !== generation) return
      body.textContent = ''
      body.append(unsupportedDurations(await mean))
      return
    }
    if (gen !== generation) return
    const counts = new Map(res.results.map((x) => [x.dimensions[0], x.metrics[0]]))
    body.textContent = ''
    const chart = h('div.hist')
    body.append(chart)
    histogram(chart, DURATION_BUCKETS.map(([k, label]) => ({ label, value: counts.get(k) || 0 })))
    const m = await mean
    if (m !== undefined) body.append(h('p.note', {}, `Mean visit duration: ${duration(m)}`))
  })
}

function unsupportedDurations(mean) {
  return h('div.empty', {},
    h('p', {}, mean !== undefined ? `Mean visit duration: ${duration(mean)}.` : ''),
    h('p', {}, `The distribution needs the query API's ${DURATION_DIM} dimension, which this server does not offer yet.`))
}

async function exportCsv(q, name) {
  try {
    await downloadCsv(q, name)
  } catch (err) {
    if (err instanceof AuthError) askKey(err.message)
    else alert(`CSV export failed: ${err.message}`)
  }
}

// ---- Realtime ------------------------------------------------------------------------------

let rtTimer = 0
let rtSite = ''
function startRealtime() {
  if (rtSite === state.site && rtTimer) return
  clearInterval(rtTimer)
  rtTimer = 0
  rtSite = state.site
  const box = $('#realtime')
  box.hidden = !state.site
  if (!state.site) return
  const tick = async () => {
    if (document.hidden) return
    try {
      const n = await realtime(rtSite)
      $('#realtime-count').textContent = full(n)
      $('#realtime-word').textContent = n === 1 ? 'current visitor' : 'current visitors'
    } catch (err) {
      if (err instanceof AuthError) askKey(err.message)
    }
  }
  tick()
  rtTimer = setInterval(tick, 30_000)
}
document.addEventListener('visibilitychange', () => { if (!document.hidden && rtTimer) { clearInterval(rtTimer); rtTimer = 0; startRealtime() } })

// ---- Wiring --------------------------------------------------------------------------------

function init() {
  takeKeyFromUrl()
  const period = $('#period')
  for (const [value, label] of PERIODS) period.append(h('option', { value }, label))
  $('#site-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const site = $('#site').value.trim().toLowerCase()
    if (site && site !== state.site) writeState({ site, filters: [] })
  })
  $('#site').addEventListener('change', () => $('#site-form').requestSubmit())
  $('#welcome-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const site = e.target.elements.site.value.trim().toLowerCase()
    if (site) writeState({ site, filters: [] })
  })
  period.addEventListener('change', () => {
    if (period.value === 'custom') {
      const today = knownToday()
      const r = resolve(state, today)
      writeState({ period: 'custom', from: iso(r.from), to: iso(Math.min(r.to, today)) })
    } else {
      writeState({ period: period.value })
    }
  })
  for (const id of ['from', 'to']) {
    $(`#${id}`).addEventListener('change', () => {
      const from = $('#from').value, to = $('#to').value
      if (from && to && from <= to) writeState({ period: 'custom', from, to })
    })
  }
  $('#compare').addEventListener('change', (e) => writeState({ compare: e.target.checked }))
  $('#key-form').addEventListener('submit', keySaved)
  $('#key-dialog').addEventListener('close', () => { askingKey = false })
  $('#forget-key').addEventListener('click', () => { setKey(''); render() })
  for (const def of PANELS) panelShell(def)
  let resizeTimer = 0
  addEventListener('resize', () => {
    clearTimeout(resizeTimer)
    resizeTimer = setTimeout(() => chartData && lineChart($('#chart'), chartData), 150)
  })
  render()
}

init()
