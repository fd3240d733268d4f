/*! ConvertPulse tracker — cookie-free landing-page analytics. MIT. */
// Configured by its own script tag: data-key (site API key), data-endpoint (ingest URL),
// data-variant (optional A/B variant; else <meta name="cp-variant">).
// Sends pageview, scroll (coalesced maximum depth), click and time (visible seconds) events,
// and `event`s: page code's window.convertpulse(name, props) (calls queued by the stub before
// this loads are replayed once, after the pageview), clicks on [data-cp-event] with
// data-cp-prop-* as props, and its own form_submit and outbound. Batched every 5 s or 10 events,
// flushed with sendBeacon when the page is hidden; a batch refused with 429 or 5xx, or lost to
// the network, is sent again (same batch_id) after 1 s, doubling up to a minute. Page URLs
// leave without their #fragment. Never throws into the host page; sends nothing under Do Not
// Track (navigator.doNotTrack, or window.doNotTrack of old Safari) or Global Privacy Control.
// On-page attention (v3, docs/attention.md): `view` events when a section or a call to action
// has been at least half visible (or filled half the window) for 1 s in a visible tab, then its
// visible time as it grows; clicks anywhere, with their position (x, y: fractions of the
// document), `rage` (the third click within 700 ms and 30 px) and `dead` (a target that does not
// act, and for 1 s no navigation, DOM change or focus change); form_start and form_abandon name
// a form and its last focused field, never a value. A page opened with ?cp_overlay= sends
// nothing and loads the overlay from the api instead.
// Size: the contract allows 2,400 bytes gzipped (gzip -9 of the minified file); all of the
// above takes 2,395 (docs/attention.md, "Size"), and tests/tests/browser_tracker.rs keeps it
// there. The code is shaped for gzip: a name or a pattern seen before costs little, code seen
// once costs a lot, so helpers are shared, state is few plain variables, and nothing is kept for
// browsers that cannot run ES2018 anyway (IE's navigator.msDoNotTrack, old Firefox's "yes").
// The ORDER of the definitions below, of the selector lists and of the `var` lists was chosen
// by measuring the gzipped size (matches close together cost fewer bits); it means nothing
// else: every definition only runs once the last block (`safe(() => { ... })()`) starts the
// tracker. Moving things around costs bytes: measure with `npm run -s build:tracker` and gzip -9.
((w, d) => {
  var s = d.currentScript, key, ep;
  // Page code may call convertpulse() without the stub; under DNT too, that must not throw.
  w.convertpulse ||= () => {};
  // An overlay link loads the overlay from the snippet's own origin, and nothing is counted.
  // Do Not Track is '1' when on (other values: '0', 'unspecified', null, undefined).
  if (!s || /cp_overlay=/.test(location.search) && (d.head.appendChild(d.createElement('script')).src = new URL('/convertpulse-overlay.js', s.src)) || navigator.globalPrivacyControl || w.__cp || /1/.test(navigator.doNotTrack + w.doNotTrack) || !(key = s.dataset.key) || !(ep = s.dataset.endpoint)) return;
  w.__cp = 1;

  // The session, "<id> <last activity ms>" in sessionStorage: renewed after 30 minutes without
  // activity. Where storage is blocked or full, the variables keep it for this page.
  try { [sid, last] = sessionStorage.cp_s.split(' '); } catch (e) { /* none yet, or blocked */ }

  // Never break the host page.
  var safe = (fn) => (...a) => { try { fn(...a); } catch (e) { /* swallowed */ } };

  var send = safe((beacon) => {
    var b = outbox[0];
    if (beacon) {
      // The page may be going away: hand everything to the browser, oldest first.
      while (outbox[0] && navigator.sendBeacon(ep, outbox[0])) outbox.shift();
    } else if (b && !busy) {
      // 2xx and 4xx other than 429 end a batch; a network error, 429 or 5xx keeps it (same
      // batch_id) for a retry after 1 s, doubling up to a minute. A beacon may have sent it
      // meanwhile: only that batch leaves the outbox.
      busy = fetch(ep, { body: b, method: 'POST' })
        .then((r) => {
          if (/429|^5/.test(r.status)) throw 0;
          busy = backoff = 0;
          if (outbox[0] == b) outbox.shift();
          send();
        })
        .catch(() => setTimeout(() => { busy = 0; send(); }, backoff = Math.min(backoff * 2 || 1e3, 6e4)));
    }
  });

  // The page itself, watched like an element always in view: its visible time is `time`.
  var page = { v: 1, ms: 0 };

  // What the current page has not reported becomes events (views, scroll, time), and the
  // queue leaves in batches of at most 50 (JSON already: a retry resends the same bytes); the
  // outbox keeps at most 20 batches. A periodic flush waits while a click may still turn out
  // dead; a beacon (the page is hidden or going) does not, and the click leaves as not dead.
  var flush = safe((beacon) => {
    if (pend && !beacon) return;
    pend = 0;
    // Seen (the first report) once in view for 1 s in all, or when clicked; after that, the
    // visible time added since the last report, capped: a laptop asleep with the tab in front
    // is not hours of reading. (push() ignores a third argument: the resets run after the
    // event is built.)
    items.forEach((it) => {
      tick(it);
      if (it.sent ? it.ms > 99 : it.hit || it.ms > 999) {
        push('view', { ...it.e, seen: !it.sent, ms: Math.min(it.ms, 6e5) }, it.sent = 1, it.ms = 0);
      }
    });
    measure();
    if (maxDepth > sentDepth) push('scroll', { depth: maxDepth, prev: sentDepth }, sentDepth = maxDepth);
    tick(page);
    if (page.ms > 9) push('time', { seconds: Math.min(page.ms, 18e5) / 1e3 });
    page.ms = 0;
    while (queue[0]) {
      outbox.push(JSON.stringify({ key: key, batch_id: rid(), session_id: sid, events: queue.splice(0, 50) }));
      if (outbox[20]) outbox.shift();
    }
    send(beacon);
  });

  var push = (type, e, t) => {
    e.type = type;
    e.ts = t = Date.now();
    if (!(t - last < 18e5)) { sid = rid(); fresh = true; }
    last = t;
    try { sessionStorage.cp_s = sid + ' ' + t; } catch (e) { /* blocked or full */ }
    e.page_id = pid;
    // Fragments carry reset and OAuth tokens: they never leave the page.
    e.url = cut(location.href.split('#')[0], 2048);
    // Not flushed right here: a flush's own events must not start another.
    if (queue.push(e) == 10) setTimeout(flush);
  };

  // busy: the oldest batch is in flight, or waiting for its retry (after `backoff` ms).
  var backoff, outbox = [], busy, queue = [];

  // tag#id when the id is unique on the page; else tag.class1.class2, up to four levels below
  // <body> (a click on <body> itself: body). Attributes, not properties: a form's .id is its
  // field named "id".
  var selector = (el) => {
    for (var parts = [], id, u; el != d.body && !parts[3] && el && !u; el = el.parentElement) {
      id = el.getAttribute('id');
      u = id && d.querySelectorAll('#' + CSS.escape(id)).length < 2;
      parts.unshift(el.localName + (u ? '#' + id : ['', ...el.classList].slice(0, 3).join('.')));
    }
    return cut(parts.join(' > '), 256) || 'body';
  };

  // fresh: push() renewed the session since the last pageview.
  var sid, last, fresh = false;
  var curUrl, path, pid, maxDepth, sentDepth;

  // The previous page (if any) is left first: its forms abandoned, its views, scroll and time
  // flushed (on the first pageview that flush has nothing to say, and starts the page's time).
  var pageview = (referrer, e, v) => {
    leave();
    pid = rid();
    sentDepth = maxDepth = 0;
    path = location.pathname;
    v = cut(s.dataset.variant || (d.querySelector('meta[name=cp-variant]') || 0).content, 64);
    push('pageview', e = { referrer: cut(referrer, 2048), title: cut(d.title, 512), ...(/^[\w .-]+$/.test(v) && { variant: v }) });
    // push() has just said whether this pageview starts a session.
    e.new_session = fresh;
    fresh = false;
    curUrl = e.url;
    measure();
    // The page's sections (named, at most 50, `order` counting them in document order) and
    // calls to action (at most 30, named by the selector a click on them reports), watched
    // afresh for each pageview.
    iobs.disconnect();
    items = [];
    d.querySelectorAll('section[id],main>[id],header[id],footer[id],[data-cp-section]').forEach((el, name) => {
      name = cut(el.getAttribute('data-cp-section') || el.getAttribute('id'), 64);
      if (name && items.length < 50) iobs.observe(el, items.push(el.__cp = { e: { kind: 'section', name: name, order: items.length }, ms: 0 }));
    });
    [...d.querySelectorAll(CTAS)].slice(0, 30).forEach((el) => iobs.observe(el, items.push(el.__cp = { e: { kind: 'cta', name: selector(el) }, ms: 0 })));
  };

  // Single-page apps: a new pageview when the path changes (not on a query or hash change).
  // Any change of the URL means the waiting click was not dead.
  var routed = safe(() => {
    pend = 0;
    if (location.pathname != path) pageview(curUrl);
  });

  // The deepest point of the page seen so far, in percent; a page no taller than the window
  // is read to the bottom.
  var measure = () => {
    maxDepth = Math.max(maxDepth, Math.min(100, Math.ceil((scrollY + innerHeight) / d.documentElement.scrollHeight * 100)));
  };

  var CTAS = 'button,[role=button],[data-cp-cta],[data-cp-event],[type=submit]';

  // An `event`, bounded as ingest requires so page code can never get a batch refused: name
  // cut to 64, at most 10 props with keys of 1-40 [A-Za-z0-9_.-], strings cut to 200, finite
  // numbers and booleans; anything else is dropped.
  var track = (name, props) => {
    var e = { name: cut(name, 64) }, k, v, o = {}, c = 0;
    for (k in typeof props == 'object' && props) {
      v = props[k];
      if (c < 10 && /^[\w.-]{1,40}$/.test(k) && (typeof v == 'string' && (v = cut(v, 200), 1) || Number.isFinite(v) || v === !!v)) {
        o[k] = v;
        e.props = o;
        c++;
      }
    }
    if (e.name) push('event', e);
  };

  // Capturing on the window (every event of the document passes it first), so a page that
  // stops propagation still counts.
  var on = (type, fn) => w.addEventListener(type, safe(fn), 1);

  // Started, unsubmitted forms are abandoned when their page is left; then its events leave
  // (by beacon when the argument is set: pagehide passes its event).
  var leave = (b, f) => {
    for (f in forms) track('form_abandon', { form: f, field: forms[f] });
    forms = {};
    flush(b);
  };

  // Attention: the watched elements and their observer; the replayed stub queue; the current
  // burst of clicks, [ms, x, y, count]; the started forms, selector -> last field; the click
  // that may turn out dead (its event, already queued).
  var items = [], forms, stubq, iobs, burst = [], pend;

  // A watched element's visible time runs while it is in view (`v`) in a visible tab. Called
  // at every change of either, and at every flush.
  var tick = (it, t) => {
    t = Date.now();
    it.ms += t - (it.at || t);
    it.at = it.v && !d.hidden && t;
  };

  // At most `max` characters (code points, as ingest counts them): an emoji is never cut in
  // half, and the server refuses a batch whose JSON holds a lone surrogate.
  var cut = (v, max) => [...[v] + ''].slice(0, max).join('');

  // Unique enough for batch, session and pageview ids (digits only); nothing secret rests on them.
  var rid = () => Date.now() + (Math.random() + '').slice(2);

  ['pushState', 'replaceState'].map((m) => {
    var orig = history[m];
    history[m] = (...a) => { orig.apply(history, a); routed(); };
  });

  on('scroll', measure);

  // A click counts for the closest element that acts (an icon inside a link or button counts
  // for the link or button), else for the element clicked, which is dead if for a second
  // nothing follows: its timer marks the queued event unless a DOM change, a focus, a URL
  // change, another click or a beacon came first.
  on('click', (e) => {
    var t = e.target, act = t.closest(CTAS + ',summary,select,textarea,label,a,input,[data-cp-track],[onclick]'), el = act || t, a, p = {}, c = Date.now(), m;
    // Text only: an input's text is empty, its value is never read.
    a = { selector: selector(el), text: cut(el.textContent.trim().replace(/\s+/g, ' '), 128) };
    if (el.href) a.href = cut(el.href, 2048);
    // A click from the keyboard has no position, and no place in a burst. 3 decimals, never
    // past 1 (a click on the very edge), which ingest would refuse.
    if (e.detail) {
      a.x = Math.min(1, Math.round(e.pageX / d.documentElement.scrollWidth * 1e3) / 1e3);
      a.y = Math.min(1, Math.round(e.pageY / d.documentElement.scrollHeight * 1e3) / 1e3);
      burst = c - burst[0] < 700 && Math.hypot(e.pageX - burst[1], e.pageY - burst[2]) <= 30 ? burst : [c, e.pageX, e.pageY, 0];
      if (++burst[3] == 3) a.rage = true;
    }
    push('click', a);
    setTimeout(() => { if (pend == a) { pend = 0; a.dead = true; } }, 1e3, pend = !act && a);
    // A call to action clicked before it was seen was seen.
    (el.__cp || {}).hit = 1;
    if (m = t.closest('[data-cp-event]')) {
      for (a of m.attributes) if (c = /^data-cp-prop-(.+)/.exec(a.name)) p[c[1]] = a.value;
      track(m.getAttribute('data-cp-event'), p);
    }
    if (el.hostname != location.hostname && /^http/.test(el.protocol)) track('outbound', { url: el.origin + el.pathname });
  });

  // The form's selector only: never a field's name or value.
  on('submit', (e) => {
    var k = selector(e.target);
    delete forms[k];
    track('form_submit', { form: k });
  });

  // A form's first focus starts it; its last focused field (its name, else its selector) is
  // where it was left. Any focus means the waiting click was not dead.
  on('focusin', (e) => {
    var t = e.target, f = t.form, k;
    pend = 0;
    if (f) {
      if (!((k = selector(f)) in forms)) track('form_start', { form: k });
      forms[k] = t.name || selector(t);
    }
  });

  on('visibilitychange', () => {
    items.map(tick);
    tick(page);
    if (d.hidden) flush(1);
  });
  on('pagehide', leave);
  on('popstate', routed);

  safe(() => {
    // Thresholds every 5 %: an element taller than the window is in view once it fills half
    // of it, which no single ratio says.
    iobs = new IntersectionObserver((es) => es.map((e) => {
      var it = e.target.__cp;
      it.v = e.intersectionRatio >= .5 || e.intersectionRect.height * 2 >= innerHeight;
      tick(it);
    }), { threshold: [...Array(21).keys()].map((i) => i / 20) });
    // Any DOM change means the waiting click was not dead.
    new MutationObserver(() => pend = 0).observe(d, { attributes: 1, subtree: 1, characterData: 1, childList: 1 });
    setInterval(flush, 5e3);
    pageview(d.referrer);
    // Calls the stub queued before this loaded, after the pageview they belong to, each on its
    // own. Without a stub queue, stubq.map throws, which ends this block where it ends anyway.
    w.convertpulse = safe(track, stubq = w.convertpulse.q);
    stubq.map(safe((a) => track(...a)));
  })();
})(window, document);
