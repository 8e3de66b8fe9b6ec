// Small SVG charts: a time series with hover, a donut and a histogram. No library: the
// dashboard needs three simple shapes, and plain SVG keeps the page light and fast.
import { compact, full } from './format.js'

const NS = 'http://www.w3.org/2000/svg'

/** svg creates an SVG element with attributes. */
export function svg(tag, attrs = {}, parent) {
  const el = document.createElementNS(NS, tag)
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v)
  if (parent) parent.append(el)
  return el
}

/** niceMax rounds a maximum up to a round number and returns it with a step for 4 ticks. */
export function niceScale(max) {
  if (!(max > 0)) return { max: 4, step: 1 }
  const raw = max / 4
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)
  return { max: step * 4, step }
}

/**
 * lineChart draws series over the same buckets.
 *   labels   short x labels, one per bucket; titles: long labels for the tooltip
 *   series   [{name, values, cls, area, dashed, titles}] (values aligned with labels)
 */
export function lineChart(box, { labels, titles, series }) {
  box.textContent = ''
  const width = Math.max(300, box.clientWidth || 800)
  const height = 240
  const pad = { l: 44, r: 12, t: 12, b: 26 }
  const w = width - pad.l - pad.r
  const h = height - pad.t - pad.b
  const n = labels.length
  const { max, step } = niceScale(Math.max(0, ...series.flatMap((s) => s.values)))
  const x = (i) => pad.l + (n <= 1 ? w / 2 : (i * w) / (n - 1))
  const y = (v) => pad.t + h - (v / max) * h

  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': series.map((s) => s.name).join(' and ') + ' over time' }, box)
  for (let v = 0; v <= max + 1e-9; v += step) {
    svg('line', { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: 'gridline' }, root)
    svg('text', { x: pad.l - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, root).textContent = compact(v)
  }
  const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(w / 80))))
  labels.forEach((l, i) => {
    if (i % every) return
    svg('text', { x: x(i), y: height - 8, class: 'tick', 'text-anchor': n === 1 ? 'middle' : i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle' }, root).textContent = l
  })
  for (const s of [...series].reverse()) {
    const pts = s.values.slice(0, n).map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`)
    if (!pts.length) continue
    if (s.area && n > 1) svg('path', { d: `M${x(0)},${y(0)}L${pts.join('L')}L${x(s.values.slice(0, n).length - 1)},${y(0)}Z`, class: `area ${s.cls}` }, root)
    svg(n > 1 ? 'polyline' : 'circle', n > 1 ? { points: pts.join(' '), class: `line ${s.cls}${s.dashed ? ' dashed' : ''}` } : { cx: x(0), cy: y(s.values[0]), r: 4, class: `dot ${s.cls}` }, root)
  }

  // Hover: a guide line and a tooltip with every series' value of the nearest bucket.
  const guide = svg('line', { y1: pad.t, y2: pad.t + h, class: 'guide', visibility: 'hidden' }, root)
  const dots = series.map((s) => svg('circle', { r: 3.5, class: `dot ${s.cls}`, visibility: 'hidden' }, root))
  const tip = document.createElement('div')
  tip.className = 'tooltip'
  tip.hidden = true
  box.append(tip)
  const overlay = svg('rect', { x: pad.l, y: pad.t, width: w, height: h, fill: 'transparent' }, root)
  const move = (ev) => {
    const r = root.getBoundingClientRect()
    const px = ev.clientX - r.left
    const i = Math.max(0, Math.min(n - 1, Math.round(n <= 1 ? 0 : ((px - pad.l) / w) * (n - 1))))
    guide.setAttribute('x1', x(i))
    guide.setAttribute('x2', x(i))
    guide.setAttribute('visibility', 'visible')
    series.forEach((s, k) => {
      const v = s.values[i]
      dots[k].setAttribute('visibility', v === undefined ? 'hidden' : 'visible')
      if (v !== undefined) { dots[k].setAttribute('cx', x(i)); dots[k].setAttribute('cy', y(v)) }
    })
    tip.textContent = ''
    const head = document.createElement('b')
    head.textContent = titles?.[i] || labels[i]
    tip.append(head)
    for (const s of series) {
      if (s.values[i] === undefined) continue
      const row = document.createElement('div')
      row.innerHTML = `<i class="swatch ${s.cls}${s.dashed ? ' dashed' : ''}"></i>`
      row.append(`${s.titles?.[i] ? s.titles[i] + ' · ' : ''}${s.name}: ${full(s.values[i])}`)
      tip.append(row)
    }
    tip.hidden = false
    const left = x(i) + 12
    tip.style.left = `${Math.min(left, width - tip.offsetWidth - 4)}px`
    tip.style.top = `${pad.t}px`
  }
  overlay.addEventListener('mousemove', move)
  overlay.addEventListener('mouseleave', () => {
    tip.hidden = true
    guide.setAttribute('visibility', 'hidden')
    dots.forEach((d) => d.setAttribute('visibility', 'hidden'))
  })
}

/** donut draws shares of a whole: items [{label, value}], at most 5 slices plus "Other". */
export function donut(box, items, { size = 132 } = {}) {
  box.textContent = ''
  const sorted = [...items].sort((a, b) => b.value - a.value)
  const top = sorted.slice(0, 5)
  const rest = sorted.slice(5).reduce((s, i) => s + i.value, 0)
  if (rest > 0) top.push({ label: 'Other', value: rest })
  const total = top.reduce((s, i) => s + i.value, 0)
  if (!total) return
  const r = size / 2
  const inner = r * 0.6
  const root = svg('svg', { width: size, height: size, viewBox: `0 0 ${size} ${size}`, class: 'donut', role: 'img' }, box)
  let a0 = -Math.PI / 2
  const legend = document.createElement('ul')
  legend.className = 'legend'
  top.forEach((it, k) => {
    const share = it.value / total
    const cls = `slice s${k}`
    if (share >= 0.9999) {
      svg('circle', { cx: r, cy: r, r: (r + inner) / 2, 'stroke-width': r - inner, fill: 'none', class: `${cls} ring` }, root)
    } else {
      const a1 = a0 + share * 2 * Math.PI
      const large = share > 0.5 ? 1 : 0
      const p = (a, rad) => `${(r + rad * Math.cos(a)).toFixed(2)},${(r + rad * Math.sin(a)).toFixed(2)}`
      svg('path', { d: `M${p(a0, r)}A${r},${r} 0 ${large} 1 ${p(a1, r)}L${p(a1, inner)}A${inner},${inner} 0 ${large} 0 ${p(a0, inner)}Z`, class: cls }, root)
      a0 = a1
    }
    const li = document.createElement('li')
    li.innerHTML = `<i class="swatch ${cls}"></i>`
    const name = document.createElement('span')
    name.textContent = it.label
    const pct = document.createElement('b')
    pct.textContent = `${Math.round(share * 100)}%`
    li.append(name, pct)
    legend.append(li)
  })
  svg('title', {}, root).textContent = top.map((i) => `${i.label}: ${full(i.value)}`).join('\n')
  box.append(legend)
}

/** histogram draws one bar per bucket: items [{label, value}] in bucket order. */
export function histogram(box, items) {
  box.textContent = ''
  const width = Math.max(280, box.clientWidth || 400)
  const height = 170
  const pad = { l: 8, r: 8, t: 18, b: 24 }
  const max = Math.max(1, ...items.map((i) => i.value))
  const bw = (width - pad.l - pad.r) / Math.max(1, items.length)
  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'chart histogram', role: 'img', 'aria-label': 'visits by duration' }, box)
  const total = items.reduce((s, i) => s + i.value, 0) || 1
  items.forEach((it, k) => {
    const bh = (it.value / max) * (height - pad.t - pad.b)
    const x = pad.l + k * bw
    const bar = svg('rect', { x: x + 3, y: height - pad.b - bh, width: Math.max(1, bw - 6), height: Math.max(0, bh), rx: 3, class: 'bar' }, root)
    svg('title', {}, bar).textContent = `${it.label}: ${full(it.value)} visits (${Math.round((it.value / total) * 100)}%)`
    svg('text', { x: x + bw / 2, y: height - 8, class: 'tick', 'text-anchor': 'middle' }, root).textContent = it.label
    if (it.value) svg('text', { x: x + bw / 2, y: height - pad.b - bh - 5, class: 'tick value', 'text-anchor': 'middle' }, root).textContent = compact(it.value)
  })
}
