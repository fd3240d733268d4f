/*! ConvertPulse tracker — cookie-free landing-page analytics. MIT. */
// Configured by its own script tag: data-key (site API key), data-endpoint (ingest URL).
// Sends pageview, scroll (coalesced maximum depth), click and time (visible seconds) events,
// batched every 5 s or 10 events, flushed with sendBeacon when the page is hidden. Never throws
// into the host page; sends nothing under Do Not Track or Global Privacy Control.
(function (w, d) {
  'use strict';
  var n = w.navigator;
  var s = d.currentScript;
  if (!s || w.__cp || n.doNotTrack == '1' || n.globalPrivacyControl) return;
  var key = s.getAttribute('data-key');
  var ep = s.getAttribute('data-endpoint');
  if (!key || !ep) return;
  w.__cp = 1;

  var FLUSH_MS = 5000, MAX_EVENTS = 10, MAX_OUTBOX = 20, SESSION_MS = 18e5;
  var queue = [], outbox = [], sending = 0, retryMs = 0, retryTimer = 0, timer = 0, flushing = 0;
  var pid, path, maxDepth, sentDepth, scrollTimer, visibleAt, visibleMs = 0;
  var sid, mem, newSession = false, curUrl;

  function now() { return Date.now(); }
  function rid() {
    var a = new Uint8Array(12), out = '';
    crypto.getRandomValues(a);
    for (var i = 0; i < a.length; i++) out += (a[i] % 36).toString(36);
    return out + now().toString(36);
  }
  function safe(fn) {
    return function () { try { fn.apply(this, arguments); } catch (e) { /* never break the host page */ } };
  }
  function cut(v, max) { return String(v == null ? '' : v).slice(0, max); }

  // Session: an id in sessionStorage, renewed after 30 minutes without activity.
  function touch() {
    var t = now(), st = null;
    try { st = JSON.parse(sessionStorage.getItem('cp_s')); } catch (e) { /* storage off */ }
    st = st || mem;
    if (st && st.i && t - st.t < SESSION_MS) {
      sid = st.i;
    } else {
      sid = rid();
      newSession = true;
    }
    mem = { i: sid, t: t };
    try { sessionStorage.setItem('cp_s', JSON.stringify(mem)); } catch (e) { /* storage off */ }
  }

  function push(type, extra) {
    touch();
    var e = { type: type, ts: now(), page_id: pid, url: cut(location.href, 2048) };
    for (var k in extra) e[k] = extra[k];
    queue.push(e);
    if (queue.length >= MAX_EVENTS && !flushing) flush();
  }

  function measure() {
    scrollTimer = 0;
    var de = d.documentElement, b = d.body;
    var height = Math.max(de.scrollHeight, b ? b.scrollHeight : 0);
    var view = w.innerHeight;
    var bottom = (w.pageYOffset || de.scrollTop || 0) + view;
    var pct = height <= view ? 100 : Math.min(100, Math.max(1, Math.round(bottom / height * 100)));
    if (pct > maxDepth) maxDepth = pct;
  }

  function visible() { return d.visibilityState == 'visible'; }

  // Pending scroll and time of the current page become events.
  function settle() {
    if (scrollTimer) { clearTimeout(scrollTimer); measure(); }
    if (maxDepth > sentDepth) {
      var prev = sentDepth;
      sentDepth = maxDepth;
      push('scroll', { depth: maxDepth, prev: prev });
    }
    if (visibleAt) { visibleMs += now() - visibleAt; visibleAt = visible() ? now() : 0; }
    while (visibleMs >= 10) {
      var ms = Math.min(visibleMs, 18e5);
      visibleMs -= ms;
      push('time', { seconds: Math.round(ms) / 1000 });
    }
  }

  function flush(beacon) {
    flushing = 1;
    try {
      if (pid) settle();
    } finally {
      flushing = 0;
    }
    while (queue.length) {
      outbox.push({ batch_id: rid(), session_id: sid, events: queue.splice(0, 50) });
      if (outbox.length > MAX_OUTBOX) outbox.shift();
    }
    send(beacon);
  }

  function body(b) {
    return JSON.stringify({ key: key, batch_id: b.batch_id, session_id: b.session_id, events: b.events });
  }

  function send(beacon) {
    if (beacon) {
      // The page may be going away: hand everything to the browser, oldest first.
      while (outbox.length && n.sendBeacon && n.sendBeacon(ep, body(outbox[0]))) outbox.shift();
      return;
    }
    if (sending || retryTimer || !outbox.length) return;
    var b = outbox[0];
    sending = 1;
    fetch(ep, { method: 'POST', body: body(b), keepalive: true, credentials: 'omit', headers: { 'Content-Type': 'text/plain' } })
      .then(function (r) { done(b, r.status != 429 && r.status < 500); }, function () { done(b, false); })
      .catch(function () { /* never surface */ });
  }

  // 2xx and 4xx other than 429 end a batch; a network error, 429 or 5xx keeps it (same
  // batch_id) for a retry with backoff.
  function done(b, ok) {
    sending = 0;
    if (ok) {
      retryMs = 0;
      if (outbox[0] === b) outbox.shift();
      send();
    } else {
      retryMs = Math.min(retryMs ? retryMs * 2 : 1000, 6e4);
      retryTimer = setTimeout(safe(function () { retryTimer = 0; send(); }), retryMs);
    }
  }

  function pageview(referrer) {
    if (pid) flush();
    pid = rid();
    path = location.pathname + location.search;
    maxDepth = 0;
    sentDepth = 0;
    touch();
    var first = newSession;
    newSession = false;
    push('pageview', { referrer: cut(referrer, 2048), title: cut(d.title, 512), new_session: first });
    curUrl = location.href;
    measure();
  }

  function selector(el) {
    var parts = [];
    while (el && el.nodeType == 1 && parts.length < 4) {
      var tag = el.tagName.toLowerCase();
      if (el.id) { parts.unshift(tag + '#' + el.id); break; }
      var cls = typeof el.className == 'string' ? el.className.trim().split(/\s+/).slice(0, 2) : [];
      parts.unshift(tag + (cls[0] ? '.' + cls.join('.') : ''));
      el = el.parentElement;
    }
    return cut(parts.join(' > '), 256);
  }

  d.addEventListener('click', safe(function (e) {
    var el = e.target && e.target.closest && e.target.closest('a,button,input[type=submit],[data-cp-track]');
    if (!el) return;
    // Never an input's value, never anything from a password field.
    var text = el.tagName == 'INPUT' ? '' : (el.textContent || '').replace(/\s+/g, ' ').trim();
    var ev = { selector: selector(el), text: cut(text, 128) };
    if (el.tagName == 'A' && el.href) ev.href = cut(el.href, 2048);
    push('click', ev);
  }), true);

  w.addEventListener('scroll', safe(function () {
    if (!scrollTimer) scrollTimer = setTimeout(safe(measure), 150);
  }), { passive: true });

  d.addEventListener('visibilitychange', safe(function () {
    if (visible()) { visibleAt = now(); touch(); } else { flush(true); }
  }));
  w.addEventListener('pagehide', safe(function () { flush(true); }));

  // Single-page apps: a new pageview when the path changes.
  function routed(replace) {
    var p = location.pathname + (replace ? '' : location.search);
    if (p != (replace ? path.split('?')[0] : path)) pageview(curUrl);
  }
  ['pushState', 'replaceState'].forEach(function (m) {
    var orig = history[m];
    history[m] = function () {
      var r = orig.apply(this, arguments);
      safe(routed)(m == 'replaceState');
      return r;
    };
  });
  w.addEventListener('popstate', safe(function () { routed(false); }));

  function tick() { flush(); timer = setTimeout(safe(tick), FLUSH_MS); }
  safe(function () {
    visibleAt = visible() ? now() : 0;
    pageview(d.referrer);
    timer = setTimeout(safe(tick), FLUSH_MS);
  })();
})(window, document);
