/*! ConvertPulse tracker — cookie-free landing-page analytics. MIT. */
// Configured by its own script tag: data-key (site API key), data-endpoint (ingest URL),
// data-variant (optional A/B variant; else <meta name="cp-variant">).
// Sends pageview, scroll (coalesced maximum depth), click and time (visible seconds) events,
// and `event`s: page code's window.convertpulse(name, props) (calls queued by the stub before
// this loads are replayed once, after the pageview), clicks on [data-cp-event] with
// data-cp-prop-* as props, and its own form_submit and outbound. Batched every 5 s or 10 events,
// flushed with sendBeacon when the page is hidden; a batch refused with 429 or 5xx, or lost to
// the network, is sent again (same batch_id) at the next flush. Page URLs leave without their
// #fragment. Never throws into the host page; sends nothing under Do Not Track (standard or
// legacy) or Global Privacy Control.
// On-page attention (v3, docs/attention.md): `view` events when a section or a call to action
// has been at least half visible (or filled half the window) for 1 s in a visible tab, then its
// visible time as it grows; clicks anywhere, with their position (x, y: fractions of the
// document), `rage` (the third click within 700 ms and 30 px) and `dead` (a target that does not
// act, and for 1 s no navigation, DOM change or focus change); form_start and form_abandon name
// a form and its last focused field, never a value. A page opened with ?cp_overlay= sends
// nothing and loads the overlay from the api instead.
// Kept small: tests/tests/browser_tracker.rs holds the minified size (docs/attention.md).
(function (w, d) {
  var n = w.navigator, s = d.currentScript, loc = location;
  // Page code may call convertpulse() without the stub; under DNT too, that must not throw.
  w.convertpulse = w.convertpulse || (() => {});
  // An overlay link: the owner looks at this page's attention; nothing is counted.
  if (s && /[?&]cp_overlay=/.test(loc.search)) return d.head.appendChild(d.createElement('script')).src = new URL('/convertpulse-overlay.js', s.src);
  if (!s || w.__cp || /1|yes/.test([n.doNotTrack, w.doNotTrack, n.msDoNotTrack]) || n.globalPrivacyControl) return;
  var data = s.dataset, key = data.key, ep = data.endpoint;
  if (!key || !ep) return;
  w.__cp = 1;

  var queue = [], outbox = [], sending, pid, path, maxDepth, sentDepth, scrollTimer, visibleAt, sid, mem, newSession, curUrl, store;
  // Attention: the watched elements and their observer, a click waiting to be called dead or
  // not ([event, ms, focused element]), the current burst of clicks ([ms, x, y, count]), the
  // started forms (selector -> last field), when the DOM last changed.
  var items = [], io, pend, burst = [], forms = {}, changed = 0;
  var CTAS = '[data-cp-event],[data-cp-cta],button,[type=submit],[role=button]';
  // What acts when clicked: a click on anything else may be dead.
  var ACTS = CTAS + ',a,input,select,textarea,label,summary,[onclick],[data-cp-track]';
  // sessionStorage throws where storage is blocked; a plain object then keeps the session
  // for this page only.
  try { store = w.sessionStorage || {}; } catch (e) { store = {}; }

  var now = () => Date.now();
  var qsa = (q) => [...d.querySelectorAll(q)];
  // Unique enough for batch, session and pageview ids; nothing secret rests on them.
  var rid = () => now().toString(36) + Math.random().toString(36).slice(2);
  // Never break the host page.
  var safe = (fn) => (...a) => { try { fn(...a); } catch (e) { /* swallowed */ } };
  var on = (target, type, fn, opt) => target.addEventListener(type, safe(fn), opt);
  // At most `max` UTF-16 units, never ending in half a surrogate pair: the server refuses a
  // batch whose JSON holds a lone surrogate.
  var cut = (v, max) => String(v == null ? '' : v).slice(0, max).replace(/[\ud800-\udbff]$/, '');
  // Fragments carry reset and OAuth tokens: they never leave the page.
  var here = () => cut(loc.href.split('#')[0], 2048);
  var visible = () => d.visibilityState == 'visible';
  var frac = (v, of) => Math.min(1, Math.round(v / of * 1e3) / 1e3);
  var de = d.documentElement;

  // Session: "<id> <last activity ms>" in sessionStorage, renewed after 30 minutes without
  // activity.
  function touch() {
    var t = now(), st = (mem || store.cp_s || '').split(' ');
    if (t - st[1] < 18e5) sid = st[0]; else { sid = rid(); newSession = 1; }
    mem = sid + ' ' + t;
    try { store.cp_s = mem; } catch (e) { /* storage full: memory still keeps this page's session */ }
  }

  function push(type, e) {
    touch();
    e.type = type;
    e.ts = now();
    e.page_id = pid;
    e.url = here();
    // Not flushed right here: a flush's own events must not start another.
    if (queue.push(e) == 10) setTimeout(safe(flush));
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

  // The deepest point of the page seen so far, in percent; a page no taller than the window is
  // read to the bottom.
  function measure() {
    scrollTimer = 0;
    maxDepth = Math.max(maxDepth, Math.min(100, Math.ceil((w.pageYOffset + innerHeight) / Math.max(de.scrollHeight, (d.body || de).scrollHeight) * 100)));
  }

  // A watched element's visible time runs while it is half visible (`v`) in a visible tab; it
  // is seen once that added up to 1 s, or once it was clicked (`hit`). Called at every change
  // of either, and at every flush.
  function tick(it, t) {
    t = now();
    it.ms += it.at ? t - it.at : 0;
    it.at = it.v && visible() ? t : 0;
  }

  // The waiting click leaves: dead when for a whole second nothing changed the page or the
  // focus (a flush, a navigation or another click before that says it was not).
  function done() {
    if (pend) {
      if (now() - pend[1] > 999 && changed < pend[1] && d.activeElement == pend[2]) pend[0].dead = true;
      push('click', pend[0]);
      pend = 0;
    }
  }

  // What is pending for the current page becomes events: the waiting click, the watched
  // elements' seen and visible time, the scroll, the visible seconds.
  function settle() {
    done();
    items.forEach((it) => {
      tick(it);
      if (it.sent ? it.ms > 99 : it.ms > 999 || it.hit) {
        // Capped: a laptop asleep with the tab in front is not hours of reading.
        push('view', { ...it.e, seen: !it.sent, ms: Math.min(it.ms, 6e5) });
        it.sent = 1;
        it.ms = 0;
      }
    });
    if (scrollTimer) { clearTimeout(scrollTimer); measure(); }
    if (maxDepth > sentDepth) {
      push('scroll', { depth: maxDepth, prev: sentDepth });
      sentDepth = maxDepth;
    }
    if (visibleAt) {
      var ms = now() - visibleAt;
      visibleAt = visible() && now();
      if (ms > 9) push('time', { seconds: Math.min(ms, 18e5) / 1000 });
    }
  }

  function flush(beacon) {
    if (pid) settle();
    while (queue[0]) {
      outbox.push({ key: key, batch_id: rid(), session_id: sid, events: queue.splice(0, 50) });
      if (outbox[20]) outbox.shift();
    }
    send(beacon);
  }

  function send(beacon) {
    var b = outbox[0];
    if (beacon) {
      // The page may be going away: hand everything to the browser, oldest first.
      while (outbox[0] && n.sendBeacon(ep, JSON.stringify(outbox[0]))) outbox.shift();
    } else if (b && !sending) {
      sending = 1;
      // 2xx and 4xx other than 429 end a batch; a network error, 429 or 5xx keeps it (same
      // batch_id) for the next flush.
      fetch(ep, { method: 'POST', body: JSON.stringify(b), keepalive: true })
        .then((r) => {
          if (r.status == 429 || r.status > 499) throw 0;
          if (outbox[0] == b) outbox.shift();
          sending = 0;
          send();
        })
        .catch(() => { sending = 0; });
    }
  }

  // Started, unsubmitted forms are abandoned when their page is left.
  function leave() {
    for (var f in forms) track('form_abandon', { form: f, field: forms[f] });
    forms = {};
  }

  function pageview(referrer) {
    if (pid) { leave(); flush(); }
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
    // The page's sections (at most 50, in document order) and calls to action (at most 30),
    // watched afresh for each pageview.
    if (io) io.disconnect();
    io = new IntersectionObserver((es) => es.forEach((e) => {
      var it = e.target.__cp;
      it.v = e.intersectionRatio >= .5 || e.intersectionRect.height >= innerHeight / 2;
      tick(it);
    }), { threshold: [...Array(21).keys()].map((i) => i / 20) });
    var watch = (el, e) => io.observe(el, items.push(el.__cp = { e: e, ms: 0 }));
    items = [];
    qsa('[data-cp-section],section[id],header[id],footer[id],main>[id]').slice(0, 50)
      .forEach((el, i) => watch(el, { kind: 'section', name: cut(el.dataset.cpSection || el.getAttribute('id'), 64), order: i }));
    qsa(CTAS).slice(0, 30).forEach((el) => watch(el, { kind: 'cta', name: selector(el) }));
  }

  // tag#id when the id is unique on the page; else tag.class1.class2, up to four levels below
  // <body>. Attributes, not properties: a form's .id is its field named "id".
  function selector(el) {
    for (var parts = [], id, c; el && el != d.body && parts.length < 4; el = el.parentElement) {
      id = el.getAttribute('id');
      if (id && qsa('#' + CSS.escape(id)).length < 2) { parts.unshift(el.localName + '#' + id); break; }
      c = [...el.classList].slice(0, 2).join('.');
      parts.unshift(el.localName + (c ? '.' + c : ''));
    }
    return cut(parts.join(' > '), 256);
  }

  // Capturing, so a page that stops propagation still counts. A click counts for the closest
  // element that acts (an icon inside a link or button counts for the link or button), else
  // for the element clicked, which is dead if nothing follows within a second.
  on(d, 'click', (e) => {
    var t = e.target, act = t.closest(ACTS), el = act || t, p = {}, a, m, x = e.pageX, y = e.pageY, c = now();
    done();
    // Text only: an input's text is empty, its value is never read.
    a = { selector: selector(el), text: cut(el.textContent.replace(/\s+/g, ' ').trim(), 128) };
    if (el.href) a.href = cut(el.href, 2048);
    // A click from the keyboard has no position.
    if (e.detail) {
      a.x = frac(x, de.scrollWidth);
      a.y = frac(y, de.scrollHeight);
    }
    burst = c - burst[0] < 700 && Math.hypot(x - burst[1], y - burst[2]) <= 30 ? burst : [c, x, y, 0];
    if (++burst[3] == 3) a.rage = true;
    // A call to action clicked before it was seen was seen.
    if (m = el.__cp) m.hit = 1;
    if (act) push('click', a);
    // Only its own timer may call this click dead: a later click's replaces it.
    else setTimeout(safe((p) => p == pend && done()), 1e3, pend = [a, c, d.activeElement]);
    if (el = t.closest('[data-cp-event]')) {
      for (a of el.attributes) if (m = /^data-cp-prop-(.+)/.exec(a.name)) p[m[1]] = a.value;
      track(el.getAttribute('data-cp-event'), p);
    }
    if ((el = t.closest('a[href]')) && /^http/.test(el.protocol) && el.hostname != loc.hostname) {
      track('outbound', { url: el.origin + el.pathname });
    }
  }, true);

  // A form's first focus starts it; its last focused field (its name, else its selector) is
  // where it was left.
  on(d, 'focusin', (e) => {
    var t = e.target, f = t.form, k;
    if (f) {
      if (!((k = selector(f)) in forms)) track('form_start', { form: k });
      forms[k] = t.name || selector(t);
    }
  });
  // The form's selector only: never a field's name or value.
  on(d, 'submit', (e) => { var k = selector(e.target); delete forms[k]; track('form_submit', { form: k }); }, true);
  on(w, 'scroll', () => { scrollTimer = scrollTimer || setTimeout(safe(measure), 150); });
  on(d, 'visibilitychange', () => {
    items.forEach(tick);
    if (visible()) { visibleAt = now(); touch(); } else flush(1);
  });
  on(w, 'pagehide', () => { leave(); flush(1); });

  // Single-page apps: a new pageview when the path changes (not on a query or hash change).
  var routed = safe(() => { if (loc.pathname != path) pageview(curUrl); });
  ['pushState', 'replaceState'].forEach((m) => {
    var orig = history[m];
    history[m] = function (...a) {
      orig.apply(this, a);
      routed();
    };
  });
  on(w, 'popstate', routed);
  safe(() => {
    visibleAt = visible() && now();
    pageview(d.referrer);
    // Calls the stub queued before this loaded, after the pageview they belong to.
    var q = w.convertpulse.q || [], i = 0;
    w.convertpulse = safe(track);
    while (i < q.length) w.convertpulse.apply(0, q[i++]);
    setInterval(safe(flush), 5000);
    new MutationObserver(() => { changed = now(); }).observe(d, { subtree: 1, childList: 1, attributes: 1, characterData: 1 });
  })();
})(window, document);
