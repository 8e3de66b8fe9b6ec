// Glimpse tracker: counts page views for the site named in data-site.
// <script defer data-site="example.com" src="https://glimpse.example.com/js/glimpse.js"></script>
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script) return;
  var site = script.getAttribute('data-site') || location.hostname;
  var endpoint = script.getAttribute('data-api') || new URL('/api/event', script.src).href;

  // send delivers one event. sendBeacon with a text/plain body needs no CORS preflight and
  // survives the page being closed; fetch with keepalive is the fallback where it is missing
  // or refuses the body.
  function send(name, props) {
    var payload = { n: name, u: location.href, d: site, r: document.referrer || null };
    if (props) payload.p = props;
    var body = JSON.stringify(payload);
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(endpoint, new Blob([body], { type: 'text/plain' }))) return;
    } catch (e) { /* fall through to fetch */ }
    try {
      fetch(endpoint, { method: 'POST', body: body, keepalive: true, headers: { 'Content-Type': 'text/plain' } })
        .catch(function () {});
    } catch (e) { /* never break the host page */ }
  }

  // glimpse('Signup', {props: {plan: 'pro'}}) records a custom event.
  window.glimpse = function (name, options) {
    if (typeof name === 'string' && name) send(name, options && options.props);
  };

  send('pageview');
})();
