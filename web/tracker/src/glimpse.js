// Glimpse tracker: page views, custom events and engagement time for the site named in
// data-site. One line on every page:
//
//   <script defer data-site="example.com" src="https://glimpse.example.com/js/glimpse.js"></script>
//
// docs/tracker.md lists every attribute and the JS API. This file is the source; the served
// script is tracker/dist/glimpse.js, built from it by web/build.mjs (keep both in sync: a
// test rebuilds and compares, and checks that the gzipped size stays within its budget).
//
// Delivery: events go out with fetch(keepalive) while the page is visible, so the answer is
// seen, and a 408, 429, 5xx or network error puts the event on a small retry queue kept in
// sessionStorage (it survives navigations within the site). An event is never in that queue
// while a request for it is in flight, so nothing is sent twice. Engagement time reported
// as the page is hidden or left goes out with sendBeacon, the one request a closing page
// still reliably makes (it gives no answer, so it is not retried).
((w, d, nav, loc) => {
  try {
    const script = d.currentScript
    const prev = w.glimpse
    if (!script || prev?.l) return // loaded twice: the first copy does the work

    const opt = script.dataset
    const on = (target, type, fn) => target.addEventListener(type, fn, true)
    const now = Date.now

    const site = opt.site || loc.hostname
    const api = opt.api || new URL('/api/event', script.src)
    const hash = 'hash' in opt
    const cookie = 'cookie' in opt && (opt.cookie || 'glimpse_id')
    const downloads = 'downloads' in opt && RegExp('\\.(' + (opt.downloads ||
      'pdf|xlsx?|docx?|pptx?|csv|txt|zip|gz|dmg|exe|mp[34]'
    ).replace(/[\s,.]+/g, '|') + ')$', 'i')

    // Sites that stay untracked as a whole: local development unless data-local is set, and
    // visitors who ask not to be tracked when the site honours that (data-dnt).
    const off =
      (!('local' in opt) && /^(localhost|127\.|\[::1\]|$)/.test(loc.hostname)) ||
      ('dnt' in opt && (nav.doNotTrack == 1 || nav.globalPrivacyControl))

    // Retry queue: [[body, failedAttempts], ...].
    let queue = []
    let timer = 0
    const save = () => { try { sessionStorage.glimpse_q = JSON.stringify(queue) } catch {} }
    try { queue = JSON.parse(sessionStorage.glimpse_q) } catch {}

    const flush = () => {
      const items = queue.splice(0)
      timer = 0
      save() // nothing in flight stays stored: if the page dies now, nothing is resent
      items.forEach((item) => send(...item))
    }

    const send = (body, tries, done, beacon) => {
      if (beacon && nav.sendBeacon?.(api, body)) return done?.()
      fetch(api, { method: 'POST', body, keepalive: true })
        .then((res) => { if (/^(5|408|429)/.test(res.status)) throw res.headers.get('retry-after') })
        .catch((after) => {
          if (++tries < 6 && queue.length < 30) {
            queue.push([body, tries])
            save()
            // The server's Retry-After (seconds) when it gave one, else 1, 2, 3, 4, 5 s.
            timer ||= setTimeout(flush, (+after || tries) * 1e3)
          }
        })
        .finally(done)
    }

    // First-party id (cookie mode), set when the first event is actually sent.
    let vid
    const event = (name, opts = {}, url, beacon) => {
      try {
        if (off || localStorage.glimpse_ignore == 'true' || !name) throw 0
        if (cookie && !vid) {
          vid = d.cookie.match('(^|; )' + cookie + '=([^;]+)')?.[2]
          if (!vid) {
            vid = crypto.getRandomValues(new Uint32Array(4)).join('')
            d.cookie = cookie + '=' + vid + ';max-age=31536000;path=/'
          }
        }
        send(JSON.stringify({
          n: name,
          u: url || loc.href,
          d: site,
          r: d.referrer,
          p: opts.props,
          $: opts.revenue,
          i: opts.interactive,
          e: opts.e,
          h: hash,
          vid,
        }), 0, opts.callback, beacon)
      } catch {
        opts.callback?.()
      }
    }

    // Engagement: milliseconds the current page was visible, reported when it is hidden or
    // left (SPA navigation), so visit duration is measured rather than guessed.
    let page // URL of the current page view
    let path // what makes a page view new: its path (and fragment with data-hash)
    let visible = 0 // visible time not yet reported
    let since = 0 // start of the current visible stretch, 0 while hidden
    // leaving: the page is being hidden or left; the report then goes out with sendBeacon.
    const engage = (leaving) => {
      if (since) visible += now() - since
      since = !leaving && now()
      if (page && visible) event('engagement', { e: visible }, page, leaving)
      visible = 0
    }
    const pageview = (force) => {
      const key = loc.pathname + (hash ? loc.hash : '')
      if (force != 1 && key == path) return // replaceState, popstate to the same page, ...
      engage(d.hidden)
      path = key
      page = loc.href
      event('pageview')
    }

    const glimpse = (name, opts) => event(name, opts || {}) // event() never throws
    glimpse.l = 1
    w.glimpse = glimpse

    if (!off) {
      const history = w.history
      ;['pushState', 'replaceState'].forEach((m) => {
        const orig = history[m]
        history[m] = function (...args) {
          orig.apply(this, args)
          pageview()
        }
      })
      on(w, 'popstate', pageview) // back/forward, and fragment changes (data-hash)
      on(d, 'visibilitychange', () => engage(d.hidden)) // hidden: report; shown: restart the clock
      on(w, 'pagehide', () => engage(1)) // leaving without visibilitychange (Chrome, same-tab navigation)
      on(w, 'pageshow', (e) => e.persisted && pageview(1, (page = 0))) // back/forward cache

      const click = (e) => { try {
        const tagged = e.target.closest('[class*=glimpse-event-name]')
        const link = e.target.closest('a[href]')
        if (tagged) {
          const all = {}
          tagged.classList.forEach((c) => {
            const m = c.match(/^glimpse-event-(.+?)=(.+)/)
            if (m) all[m[1]] = m[2].replace(/\+/g, ' ')
          })
          const { name, ...props } = all
          event(name, { props })
        }
        if (link) {
          const url = new URL(link.href, loc)
          const props = { props: { url: url.href } }
          if (downloads?.test(url.pathname)) event('File Download', props)
          else if ('outbound' in opt && url.host && url.host != loc.host) event('Outbound Link: Click', props)
        }
      } catch {} }
      on(d, 'click', click)
      on(d, 'auxclick', (e) => e.button == 1 && click(e)) // middle button

      flush() // what earlier pages of this tab could not deliver
      const start = () => {
        pageview()
        if ('404' in opt) event('404') // break it down by event:page
      }
      d.prerendering ? on(d, 'prerenderingchange', start) : start()
    }
    // Calls made before the script loaded, through the stub
    // window.glimpse = window.glimpse || function () { (glimpse.q = glimpse.q || []).push(arguments) }
    ;prev?.q?.forEach((args) => glimpse(...args))
  } catch {
    // never break the host page
  }
})(window, document, navigator, location)
