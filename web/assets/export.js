// CSV export of the current view (and the site's export zip). The export call needs the bearer token, which a plain link
// cannot send: fetch it, then save the body through a Blob link.

import { request } from './http.js';

/** The file name from a Content-Disposition header, reduced to safe characters, ending in `ext`. */
function fileName(disposition, fallback, ext) {
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition || '');
  let name = m ? m[1] : fallback;
  try { name = decodeURIComponent(name); } catch (e) { /* keep it as sent */ }
  name = name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 120);
  return name.toLowerCase().endsWith(ext) ? name : name + ext;
}

/** Downloads `path` (with `token`); `fallback` names the file when the server does not. */
export function downloadCsv(path, token, fallback) {
  return download(path, token, fallback, '.csv');
}

/** The same for any file whose name ends in `ext` (`.zip`). */
export function download(path, token, fallback, ext) {
  return request(path, { token, raw: true }).then((res) => res.blob().then((blob) => {
    const href = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = href;
    a.download = fileName(res.headers.get('Content-Disposition'), fallback, ext);
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10000);
    return a.download;
  }));
}
