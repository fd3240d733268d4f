/*! ConvertPulse overlay — paints a page's attention over the live page. MIT. */
// Loaded by the snippet instead of tracking when the page's URL carries ?cp_overlay=<token>
// (an overlay link from the dashboard: read-only, one site and one page, for an hour). Reads
// GET <api>/api/overlay/<token>?timeframe=... from the origin it was loaded from and paints:
// the click map (a 20 × 50 grid over the document, each cell as strong as its share of the
// busiest), the scroll map (a bar along the right edge with the share of pageviews that reached
// each 5 % of the page, and a fold line every 25 % saying "x % reached here") and, at the top edge
// of each tracked section, its view rate and average visible time. A panel switches each layer
// and the range, and closes. Sends nothing; everything it adds lives under one element and goes
// with Close. Page data only ever reaches the page through textContent.
(function (w, d) {
  var me = d.currentScript;
  var token = new URLSearchParams(location.search).get('cp_overlay');
  if (!me || !token) return;
  var api = new URL(me.src).origin;
  var root = d.createElement('div');
  root.setAttribute('data-cp-overlay', '');
  root.style.cssText = 'position:absolute;left:0;top:0;width:0;height:0;z-index:2147483646;pointer-events:none';
  var layer;

  function el(tag, css, text) {
    var e = d.createElement(tag);
    if (css) e.style.cssText = css;
    if (text != null) e.textContent = text;
    return e;
  }

  var panel = el(
    'div',
    'position:fixed;left:12px;bottom:12px;z-index:2147483647;background:#111827;color:#f9fafb;font:13px/1.4 system-ui,sans-serif;' +
      'padding:10px 12px;border-radius:8px;box-shadow:0 4px 16px rgba(0,0,0,.3);pointer-events:auto;max-width:320px'
  );
  var title = el('div', 'font-weight:600;margin-bottom:6px', 'ConvertPulse overlay');
  var status = el('div', 'margin-bottom:6px', 'Loading…');
  var range = el('select', 'margin-right:8px');
  [['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['90d', 'Last 90 days']].forEach(function (o) {
    var opt = el('option', '', o[1]);
    opt.value = o[0];
    range.appendChild(opt);
  });
  range.value = '30d';
  var close = el('button', 'cursor:pointer', 'Close');
  close.type = 'button';
  // One switch per layer; a layer is an element of its own, shown or hidden.
  var layers = {}, switches = el('div', 'margin:6px 0');
  [['clicks', 'Click map'], ['scroll', 'Scroll map'], ['sections', 'Sections']].forEach(function (l) {
    var label = el('label', 'margin-right:10px;cursor:pointer'), box = el('input');
    box.type = 'checkbox';
    box.checked = true;
    box.setAttribute('data-layer', l[0]);
    box.addEventListener('change', function () { if (layers[l[0]]) layers[l[0]].hidden = !box.checked; });
    label.append(box, ' ' + l[1]);
    switches.appendChild(label);
  });
  panel.append(title, status, switches, range, close);
  close.addEventListener('click', function () { root.remove(); panel.remove(); });
  range.addEventListener('change', load);
  d.body.append(root, panel);

  function pct(v) { return Math.round(v * 1000) / 10 + ' %'; }

  function paint(view) {
    if (layer) layer.remove();
    var de = d.documentElement, W = de.scrollWidth, H = de.scrollHeight;
    var box = 'position:absolute;left:0;top:0;width:' + W + 'px;height:' + H + 'px';
    layer = el('div', box);
    ['clicks', 'scroll', 'sections'].forEach(function (name) {
      layers[name] = layer.appendChild(el('div', box));
      layers[name].setAttribute('data-cp-layer', name);
      layers[name].hidden = !panel.querySelector('[data-layer=' + name + ']').checked;
    });
    var map = view.click_map, max = 1, total = 0;
    map.cells.forEach(function (c) { max = Math.max(max, c[2]); total += c[2]; });
    var cw = W / map.cols, ch = H / map.rows;
    map.cells.forEach(function (c) {
      var cell = el('div', 'position:absolute;left:' + c[0] * cw + 'px;top:' + c[1] * ch + 'px;width:' + cw + 'px;height:' + ch +
        'px;background:rgba(239,68,68,' + (0.15 + 0.6 * c[2] / max).toFixed(2) + ')');
      cell.title = c[2] + ' clicks';
      layers.clicks.appendChild(cell);
    });
    // The scroll map: 20 bands down the right edge, darker where fewer pageviews reached.
    var reached = view.scroll_map, views = Math.max(view.pageviews, 1);
    reached.forEach(function (n, i) {
      var share = n / views;
      var band = el('div', 'position:absolute;right:0;top:' + (i * H) / 20 + 'px;width:44px;height:' + H / 20 +
        'px;background:rgba(17,24,39,' + (0.75 - 0.6 * share).toFixed(2) + ');color:#fff;font:11px system-ui,sans-serif;' +
        'text-align:center;padding-top:2px', pct(share));
      band.title = n + ' of ' + view.pageviews + ' pageviews reached ' + (i + 1) * 5 + ' %';
      layers.scroll.appendChild(band);
      // A fold line at 25, 50, 75 and 100 % of the page.
      if ((i + 1) % 5 == 0) {
        layers.scroll.appendChild(el('div', 'position:absolute;left:0;right:0;top:' + ((i + 1) * H) / 20 +
          'px;border-top:2px dashed #f59e0b;height:0'));
        layers.scroll.appendChild(el('div', 'position:absolute;right:52px;top:' + (((i + 1) * H) / 20 - 22) +
          'px;background:#f59e0b;color:#111827;font:12px system-ui,sans-serif;padding:2px 6px;border-radius:4px',
          pct(share) + ' reached here'));
      }
    });
    // Each section's figures at its top-left corner.
    view.sections.forEach(function (s) {
      var target = d.querySelector('[data-cp-section="' + CSS.escape(s.name) + '"]') || d.getElementById(s.name);
      if (!target) return;
      var r = target.getBoundingClientRect();
      layers.sections.appendChild(el('div', 'position:absolute;left:' + (r.left + w.scrollX + 8) + 'px;top:' + (r.top + w.scrollY + 8) +
        'px;background:#2563eb;color:#fff;font:12px system-ui,sans-serif;padding:2px 6px;border-radius:4px',
        s.name + ': ' + pct(s.view_rate) + ' viewed, ' + s.avg_visible_seconds + ' s'));
    });
    root.appendChild(layer);
    title.textContent = 'ConvertPulse overlay · ' + view.path;
    status.textContent = view.pageviews + ' pageviews, ' + total + ' clicks mapped';
  }

  function load() {
    status.textContent = 'Loading…';
    fetch(api + '/api/overlay/' + encodeURIComponent(token) + '?timeframe=' + range.value)
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.message || 'the overlay link did not open');
          return body;
        });
      })
      .then(paint)
      .catch(function (e) { status.textContent = 'No overlay: ' + e.message + '. Open a new one from the dashboard.'; });
  }
  load();
})(window, document);
