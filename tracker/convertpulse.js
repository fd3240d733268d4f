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
// Track (standard or legacy) or Global Privacy Control.
// On-page attention (v3, docs/attention.md): `view` events when a section or a call to action
// has been at least half visible (or filled half the window) for 1 s in a visible tab, then its
// visible time as it grows; clicks anywhere, with their position (x, y: fractions of the
// document), `rage` (the third click within 700 ms and 30 px) and `dead` (a target that does not
// act, and for 1 s no navigation, DOM change or focus change); form_start and form_abandon name
// a form and its last focused field, never a value. A page opened with ?cp_overlay= sends
// nothing and loads the overlay from the api instead.
// Size: the contract allows 2,400 bytes gzipped (gzip -9 of the minified file); all of the
// above takes about 2,580 (docs/attention.md, "Size"), and tests/tests/browser_tracker.rs keeps
// it from growing. The code is shaped for gzip: a name or a pattern seen before costs little,
// code seen once costs a lot, so helpers are shared, state is few plain variables, and nothing
// is kept for browsers that cannot run ES2018 anyway.
((w, d) => {
  var n = navigator, s = d.currentScript, loc = location, de = d.documentElement;
  // Page code may call convertpulse() without the stub; under DNT too, that must not throw.
  w.convertpulse = w.convertpulse || (() => {});
  // An overlay link: the owner looks at this page's attention; nothing is counted.
  if (s && /[?&]cp_overlay=/.test(loc.search)) {
    return d.head.appendChild(d.createElement('script')).src = new URL('/convertpulse-overlay.js', s.src);
  }
  if (!s || w.__cp || /1|yes/.test([n.doNotTrack, w.doNotTrack, n.msDoNotTrack]) || n.globalPrivacyControl) return;
  var data = s.dataset, key = data.key, ep = data.endpoint;
  if (!key || !ep) return;
  w.__cp = 1;

  // busy: the oldest batch is in flight, or waiting for its retry (after `backoff` ms).
  var queue = [], outbox = [], busy = 0, backoff = 0;
  // The session, "<id> <last activity ms>" in sessionStorage: renewed after 30 minutes without
  // activity. Where storage is blocked or full, these variables keep it for this page.
  var sid, last, fresh = false;
  var pid, path, curUrl, maxDepth, sentDepth;
  // Attention: the observer and the watched elements; the click that may turn out dead (its
  // event, already queued); the current burst of clicks, [ms, x, y, count]; the started forms,
  // selector -> last field.
  var io, items = [], pend, burst = [], forms = {};
  // The page itself, watched like an element always in view: its visible time is `time`.
  var page = { v: 1, ms: 0 };
  var CTAS = '[data-cp-event],[data-cp-cta],button,[type=submit],[role=button]';
  // What acts when clicked: a click on anything else may be dead.
  var ACTS = CTAS + ',a,input,select,textarea,label,summary,[onclick],[data-cp-track]';
  try { [sid, last] = sessionStorage.cp_s.split(' '); } catch (e) { /* none yet, or blocked */ }

  var now = Date.now,
    // Unique enough for batch, session and pageview ids; nothing secret rests on them.
    rid = () => now().toString(36) + Math.random().toString(36).slice(2),
    // Never break the host page.
    safe = (fn) => (...a) => { try { fn(...a); } catch (e) { /* swallowed */ } },
    // Capturing, so a page that stops propagation still counts.
    on = (target, type, fn) => target.addEventListener(type, safe(fn), true),
    qsa = (q) => [...d.querySelectorAll(q)],
    // At most `max` UTF-16 units, never ending in half a surrogate pair: the server refuses a
    // batch whose JSON holds a lone surrogate.
    cut = (v, max) => String(v == null ? '' : v).slice(0, max).replace(/[\ud800-\udbff]$/, ''),
    // Fragments carry reset and OAuth tokens: they never leave the page.
    here = () => cut(loc.href.split('#')[0], 2048),
    // 3 decimals, never past 1 (a click on the very edge), which ingest would refuse.
    frac = (v, of) => Math.min(1, Math.round(v / of * 1e3) / 1e3),

    push = (type, e, t) => {
      t = now();
      if (!(t - last < 18e5)) { sid = rid(); fresh = true; }
      last = t;
      try { sessionStorage.cp_s = sid + ' ' + t; } catch (e) { /* blocked or full */ }
      e.type = type;
      e.ts = t;
      e.page_id = pid;
      e.url = here();
      // Not flushed right here: a flush's own events must not start another.
      if (queue.push(e) == 10) setTimeout(flush);
    },

    // An `event`, bounded as ingest requires so page code can never get a batch refused: name
    // cut to 64, at most 10 props with keys of 1-40 [A-Za-z0-9_.-], strings cut to 200, finite
    // numbers and booleans; anything else is dropped.
    track = (name, props) => {
      var e = { name: cut(name, 64) }, o = {}, c = 0, k, v;
      for (k in typeof props == 'object' ? props : 0) {
        v = props[k];
        if (c < 10 && /^[\w.-]{1,40}$/.test(k) && (v === !!v || Number.isFinite(v) || typeof v == 'string' && (v = cut(v, 200), 1))) {
          o[k] = v;
          e.props = o;
          c++;
        }
      }
      if (e.name) push('event', e);
    },

    // The deepest point of the page seen so far, in percent; a page no taller than the window
    // is read to the bottom.
    measure = () => {
      maxDepth = Math.max(maxDepth, Math.min(100, Math.ceil((scrollY + innerHeight) / de.scrollHeight * 100)));
    },

    // A watched element's visible time runs while it is in view (`v`) in a visible tab. Called
    // at every change of either, and at every flush.
    tick = (it, t) => {
      t = now();
      it.ms += t - (it.at || t);
      it.at = it.v && !d.hidden && t;
    },
    watch = (el, e) => io.observe(el, items.push(el.__cp = { e: e, ms: 0 })),

    // What the current page has not reported becomes events (views, scroll, time), and the
    // queue leaves in batches of at most 50; the outbox keeps at most 20 batches. A periodic
    // flush waits while a click may still turn out dead; a beacon (the page is hidden or
    // going) does not, and the click leaves as not dead.
    flush = safe((beacon) => {
      if (pend && !beacon) return;
      pend = 0;
      // Seen (the first report) once in view for 1 s in all, or when clicked; after that, the
      // visible time added since the last report.
      items.forEach((it) => {
        tick(it);
        if (it.sent ? it.ms > 99 : it.ms > 999 || it.hit) {
          // Capped: a laptop asleep with the tab in front is not hours of reading.
          push('view', { ...it.e, seen: !it.sent, ms: Math.min(it.ms, 6e5) });
          it.sent = 1;
          it.ms = 0;
        }
      });
      measure();
      if (maxDepth > sentDepth) {
        push('scroll', { depth: maxDepth, prev: sentDepth });
        sentDepth = maxDepth;
      }
      tick(page);
      if (page.ms > 9) push('time', { seconds: Math.min(page.ms, 18e5) / 1e3 });
      page.ms = 0;
      while (queue[0]) {
        outbox.push({ key: key, batch_id: rid(), session_id: sid, events: queue.splice(0, 50) });
        if (outbox[20]) outbox.shift();
      }
      send(beacon);
    }),

    send = safe((beacon) => {
      var b = outbox[0];
      if (beacon) {
        // The page may be going away: hand everything to the browser, oldest first.
        while (outbox[0] && n.sendBeacon(ep, JSON.stringify(outbox[0]))) outbox.shift();
      } else if (b && !busy) {
        // 2xx and 4xx other than 429 end a batch; a network error, 429 or 5xx keeps it (same
        // batch_id) for a retry after 1 s, doubling up to a minute. A beacon may have sent it
        // meanwhile: only that batch leaves the outbox.
        busy = fetch(ep, { method: 'POST', body: JSON.stringify(b) })
          .then((r) => {
            if (r.status == 429 || r.status > 499) throw 0;
            busy = backoff = 0;
            if (outbox[0] == b) outbox.shift();
            send();
          })
          .catch(() => setTimeout(() => { busy = 0; send(); }, backoff = Math.min(backoff * 2 || 1e3, 6e4)));
      }
    }),

    // Started, unsubmitted forms are abandoned when their page is left.
    leave = () => {
      for (var f in forms) track('form_abandon', { form: f, field: forms[f] });
      forms = {};
    },

    pageview = (referrer, e, v) => {
      if (pid) { leave(); flush(); }
      pid = rid();
      path = loc.pathname;
      maxDepth = sentDepth = 0;
      v = cut(data.variant || (d.querySelector('meta[name=cp-variant]') || 0).content, 64);
      push('pageview', e = { referrer: cut(referrer, 2048), title: cut(d.title, 512), ...(/^[\w .-]+$/.test(v) && { variant: v }) });
      // push() has just said whether this pageview starts a session.
      e.new_session = fresh;
      fresh = false;
      curUrl = here();
      measure();
      // The page's sections (named, at most 50, `order` counting them in document order) and
      // calls to action (at most 30, named by the selector a click on them reports), watched
      // afresh for each pageview.
      io.disconnect();
      items = [];
      qsa('[data-cp-section],section[id],header[id],footer[id],main>[id]').forEach((el, name) => {
        name = cut(el.getAttribute('data-cp-section') || el.getAttribute('id'), 64);
        if (name && items.length < 50) watch(el, { kind: 'section', name: name, order: items.length });
      });
      qsa(CTAS).slice(0, 30).forEach((el) => watch(el, { kind: 'cta', name: selector(el) }));
    },

    // tag#id when the id is unique on the page; else tag.class1.class2, up to four levels below
    // <body> (a click on <body> itself: body). Attributes, not properties: a form's .id is its
    // field named "id".
    selector = (el) => {
      for (var parts = [], id, u; el && !u && el != d.body && !parts[3]; el = el.parentElement) {
        id = el.getAttribute('id');
        u = id && qsa('#' + CSS.escape(id)).length < 2;
        parts.unshift(el.localName + (u ? '#' + id : ['', ...el.classList].slice(0, 3).join('.')));
      }
      return cut(parts.join(' > '), 256) || 'body';
    },

    // Single-page apps: a new pageview when the path changes (not on a query or hash change).
    // Any change of the URL means the waiting click was not dead.
    routed = safe(() => {
      pend = 0;
      if (loc.pathname != path) pageview(curUrl);
    });

  // A click counts for the closest element that acts (an icon inside a link or button counts
  // for the link or button), else for the element clicked, which is dead if for a second
  // nothing follows: its timer marks the queued event unless a DOM change, a focus, a URL
  // change, another click or a beacon came first.
  on(d, 'click', (e) => {
    var t = e.target, act = t.closest(ACTS), el = act || t, x = e.pageX, y = e.pageY, c = now(), p = {}, a, m;
    // Text only: an input's text is empty, its value is never read.
    a = { selector: selector(el), text: cut(el.textContent.replace(/\s+/g, ' ').trim(), 128) };
    if (el.href) a.href = cut(el.href, 2048);
    // A click from the keyboard has no position, and no place in a burst.
    if (e.detail) {
      a.x = frac(x, de.scrollWidth);
      a.y = frac(y, de.scrollHeight);
      burst = c - burst[0] < 700 && Math.hypot(x - burst[1], y - burst[2]) <= 30 ? burst : [c, x, y, 0];
      if (++burst[3] == 3) a.rage = true;
    }
    // A call to action clicked before it was seen was seen.
    if (m = el.__cp) m.hit = 1;
    push('click', a);
    setTimeout(() => { if (pend == a) { pend = 0; a.dead = true; } }, 1e3, pend = !act && a);
    if (m = t.closest('[data-cp-event]')) {
      for (a of m.attributes) if (c = /^data-cp-prop-(.+)/.exec(a.name)) p[c[1]] = a.value;
      track(m.getAttribute('data-cp-event'), p);
    }
    if (/^http/.test(el.protocol) && el.hostname != loc.hostname) track('outbound', { url: el.origin + el.pathname });
  });

  // A form's first focus starts it; its last focused field (its name, else its selector) is
  // where it was left. Any focus means the waiting click was not dead.
  on(d, 'focusin', (e) => {
    var t = e.target, f = t.form, k;
    pend = 0;
    if (f) {
      if (!((k = selector(f)) in forms)) track('form_start', { form: k });
      forms[k] = t.name || selector(t);
    }
  });

  // The form's selector only: never a field's name or value.
  on(d, 'submit', (e) => {
    var k = selector(e.target);
    delete forms[k];
    track('form_submit', { form: k });
  });

  on(w, 'scroll', measure);
  on(d, 'visibilitychange', () => {
    items.forEach(tick);
    tick(page);
    if (d.hidden) flush(1);
  });
  on(w, 'pagehide', () => { leave(); flush(1); });

  ['pushState', 'replaceState'].forEach((m) => {
    var orig = history[m];
    history[m] = (...a) => (a = orig.apply(history, a), routed(), a);
  });
  on(w, 'popstate', routed);

  safe(() => {
    // Thresholds every 5 %: an element taller than the window is in view once it fills half
    // of it, which no single ratio says.
    io = new IntersectionObserver((es) => es.forEach((e) => {
      var it = e.target.__cp;
      it.v = e.intersectionRatio >= .5 || e.intersectionRect.height >= innerHeight / 2;
      tick(it);
    }), { threshold: [...Array(21).keys()].map((i) => i / 20) });
    // Any DOM change means the waiting click was not dead.
    new MutationObserver(() => { pend = 0; }).observe(d, { subtree: 1, childList: 1, attributes: 1, characterData: 1 });
    tick(page);
    pageview(d.referrer);
    setInterval(flush, 5e3);
    // Calls the stub queued before this loaded, after the pageview they belong to, each on its
    // own.
    var q = w.convertpulse.q || [];
    w.convertpulse = safe(track);
    q.map(safe((a) => track(...a)));
  })();
})(window, document);
