/*! ConvertPulse tracker — cookie-free landing-page analytics. MIT. */
// Configured by its own script tag: data-key (site API key), data-endpoint (ingest URL),
// data-variant (optional A/B variant; else <meta name="cp-variant">).
// Sends pageview, scroll (coalesced maximum depth), click and time (visible seconds) events,
// and `event`s: page code's window.convertpulse(name, props) (calls queued by the stub before
// this loads are replayed once, after the pageview), clicks on [data-cp-event] with
// data-cp-prop-* as props, and its own form_submit and outbound. Batched every 5 s or 10 events,
// flushed with sendBeacon when the page is hidden. Page URLs leave without their #fragment.
// Never throws into the host page; sends nothing under Do Not Track (standard or legacy) or
// Global Privacy Control. Kept small: the default snippet must stay within 2,048 bytes gzipped.
(function (w, d) {
  var n = w.navigator;
  var s = d.currentScript;
  var loc = location;
  // Page code may call convertpulse() without the stub; under DNT too, that must not throw.
  w.convertpulse = w.convertpulse || (() => {});
  if (!s || w.__cp || /1|yes/.test([n.doNotTrack, w.doNotTrack, n.msDoNotTrack]) || n.globalPrivacyControl) return;
  var data = s.dataset, key = data.key, ep = data.endpoint;
  if (!key || !ep) return;
  w.__cp = 1;

  var queue = [], outbox = [], sending = 0, retryMs = 0, retryTimer = 0;
  var pid, path, maxDepth, sentDepth, scrollTimer, visibleAt;
  var sid, mem, newSession, curUrl, store;
  // sessionStorage throws where storage is blocked; a plain object then keeps the session
  // for this page only.
  try { store = w.sessionStorage || {}; } catch (e) { store = {}; }

  var now = () => Date.now();
  var rid = () => now().toString(36) + crypto.getRandomValues(new Uint32Array(2)).join('');
  // Never break the host page.
  var safe = (fn) => (...a) => { try { fn(...a); } catch (e) { /* swallowed */ } };
  var on = (target, type, fn, opt) => target.addEventListener(type, safe(fn), opt);
  // At most `max` UTF-16 units, never ending in half a surrogate pair: the server refuses a
  // batch whose JSON holds a lone surrogate.
  var cut = (v, max) => String(v == null ? '' : v).slice(0, max).replace(/[\ud800-\udbff]$/, '');
  // Fragments carry reset and OAuth tokens: they never leave the page.
  var here = () => cut(loc.href.split('#')[0], 2048);
  var visible = () => d.visibilityState == 'visible';

  // Session: "<id> <last activity ms>" in sessionStorage, renewed after 30 minutes without
  // activity.
  function touch() {
    var t = now(), st = (mem || store.cp_s || '').split(' ');
    if (t - st[1] < 18e5) sid = st[0]; else { sid = rid(); newSession = true; }
    mem = sid + ' ' + t;
    try { store.cp_s = mem; } catch (e) { /* storage full: memory still keeps this page's session */ }
  }

  function push(type, e) {
    touch();
    e.type = type;
    e.ts = now();
    e.page_id = pid;
    e.url = here();
    queue.push(e);
    // Not flushed right here: a flush's own scroll and time events must not start another.
    if (queue.length == 10) setTimeout(safe(flush));
  }

  // An `event`, bounded as ingest requires so page code can never get a batch refused: name
  // cut to 64, at most 10 props with keys of 1-40 [A-Za-z0-9_.-], strings cut to 200, finite
  // numbers and booleans; anything else is dropped.
  function track(name, props) {
    var e = { name: cut(name, 64) }, o = {}, c = 0, k, v, t;
    for (k in typeof props == 'object' ? props : 0) {
      v = props[k];
      t = typeof v;
      if (c < 10 && /^[\w.-]{1,40}$/.test(k) && (t == 'string' || t == 'boolean' || t == 'number' && isFinite(v))) {
        o[k] = t == 'string' ? cut(v, 200) : v;
        e.props = o;
        c++;
      }
    }
    if (e.name) push('event', e);
  }

  function measure() {
    scrollTimer = 0;
    var de = d.documentElement;
    // A page no taller than the window is read to the bottom: 100.
    var pct = Math.min(100, Math.ceil((w.pageYOffset + w.innerHeight) / Math.max(de.scrollHeight, (d.body || de).scrollHeight) * 100));
    if (pct > maxDepth) maxDepth = pct;
  }

  // Pending scroll and time of the current page become events.
  function settle() {
    if (scrollTimer) { clearTimeout(scrollTimer); measure(); }
    if (maxDepth > sentDepth) {
      push('scroll', { depth: maxDepth, prev: sentDepth });
      sentDepth = maxDepth;
    }
    if (visibleAt) {
      var ms = now() - visibleAt;
      visibleAt = visible() ? now() : 0;
      // Capped: a laptop asleep with the tab in front is not 3 hours of reading.
      if (ms >= 10) push('time', { seconds: Math.min(ms, 18e5) / 1000 });
    }
  }

  function flush(beacon) {
    if (pid) settle();
    while (queue.length) {
      outbox.push({ key: key, batch_id: rid(), session_id: sid, events: queue.splice(0, 50) });
      if (outbox.length > 20) outbox.shift();
    }
    send(beacon);
  }

  function send(beacon) {
    if (beacon) {
      // The page may be going away: hand everything to the browser, oldest first.
      while (outbox.length && n.sendBeacon(ep, JSON.stringify(outbox[0]))) outbox.shift();
    } else if (!sending && !retryTimer && outbox.length) {
      var b = outbox[0];
      sending = 1;
      // 2xx and 4xx other than 429 end a batch; a network error, 429 or 5xx keeps it (same
      // batch_id) for a retry with backoff.
      fetch(ep, { method: 'POST', body: JSON.stringify(b), keepalive: true })
        .then((r) => {
          if (r.status == 429 || r.status > 499) throw 0;
          sending = retryMs = 0;
          if (outbox[0] == b) outbox.shift();
          send();
        })
        .catch(() => {
          sending = 0;
          retryMs = Math.min(retryMs * 2 || 1000, 6e4);
          retryTimer = setTimeout(() => { retryTimer = 0; safe(send)(); }, retryMs);
        });
    }
  }

  function pageview(referrer) {
    if (pid) flush();
    pid = rid();
    path = loc.pathname;
    maxDepth = sentDepth = 0;
    touch();
    var e = { referrer: cut(referrer, 2048), title: cut(d.title, 512), new_session: !!newSession };
    var v = cut(data.variant || (d.querySelector('meta[name=cp-variant]') || 0).content, 64);
    if (/^[\w .-]+$/.test(v)) e.variant = v;
    newSession = 0;
    push('pageview', e);
    curUrl = here();
    measure();
  }

  // tag#id when the id is unique on the page; else tag.class1.class2, up to four levels below
  // <body>. Attributes, not properties: a form's .id is its field named "id".
  function selector(el) {
    for (var parts = [], id, c; el && el != d.body && parts.length < 4; el = el.parentElement) {
      id = el.getAttribute('id');
      if (id && d.querySelectorAll('#' + CSS.escape(id)).length < 2) { parts.unshift(el.localName + '#' + id); break; }
      c = [...el.classList].slice(0, 2).join('.');
      parts.unshift(el.localName + (c ? '.' + c : ''));
    }
    return cut(parts.join(' > '), 256);
  }

  // Capturing, so a page that stops propagation still counts; a click on an icon inside a
  // link or button counts for the link or button.
  on(d, 'click', (e) => {
    var t = e.target, el = t.closest('a,button,input[type=submit],[data-cp-track]'), p = {}, a, m;
    if (el) {
      // Text only: an input's text is empty, its value is never read.
      a = { selector: selector(el), text: cut(el.textContent.replace(/\s+/g, ' ').trim(), 128) };
      if (el.tagName == 'A' && el.href) a.href = cut(el.href, 2048);
      push('click', a);
    }
    if (el = t.closest('[data-cp-event]')) {
      for (a of el.attributes) if (m = /^data-cp-prop-(.+)/.exec(a.name)) p[m[1]] = a.value;
      track(el.getAttribute('data-cp-event'), p);
    }
    if ((el = t.closest('a[href]')) && /^http/.test(el.protocol) && el.hostname != loc.hostname) {
      track('outbound', { url: el.origin + el.pathname });
    }
  }, true);

  // The form's selector only: never a field's name or value.
  on(d, 'submit', (e) => track('form_submit', { form: selector(e.target) }), true);

  on(w, 'scroll', () => { scrollTimer = scrollTimer || setTimeout(safe(measure), 150); });
  on(d, 'visibilitychange', () => {
    if (visible()) { visibleAt = now(); touch(); } else flush(1);
  });
  on(w, 'pagehide', () => flush(1));

  // Single-page apps: a new pageview when the path changes (not on a query or hash change).
  var routed = safe(() => { if (loc.pathname != path) pageview(curUrl); });
  ['pushState', 'replaceState'].forEach((m) => {
    var orig = history[m];
    history[m] = function () {
      try { return orig.apply(this, arguments); } finally { routed(); }
    };
  });
  on(w, 'popstate', routed);
  safe(() => {
    visibleAt = visible() ? now() : 0;
    pageview(d.referrer);
    // Calls the stub queued before this loaded, after the pageview they belong to.
    var q = w.convertpulse.q || [], i = 0;
    w.convertpulse = safe(track);
    while (i < q.length) w.convertpulse.apply(0, q[i++]);
    setInterval(safe(flush), 5000);
  })();
})(window, document);
