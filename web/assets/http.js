// Calls to our own api. Failures reject with an Error carrying the HTTP `status`, the api's
// error `code` and its `message` (every error body is {"error", "message"}).

const MESSAGES = {
  0: 'The server cannot be reached. Check your connection.',
  404: 'Not found.',
  429: 'Too many requests. Please wait a moment.',
  500: 'The server had a problem. Please try again.',
  503: 'The server is busy. Please try again.',
};

function failure(status, body) {
  const e = new Error((body && body.message) || (body && body.error) || MESSAGES[status] || 'Request failed (HTTP ' + status + ').');
  e.status = status;
  e.code = body && body.error;
  return e;
}

/**
 * `fetch` of `path` with the bearer `token` (if any) and a JSON `body` or a `file` (if any). Resolves with
 * the parsed body (null for 204), or with the Response itself when `raw` is set.
 */
export function request(path, options) {
  const o = options || {};
  const headers = {};
  if (o.token) headers.Authorization = 'Bearer ' + o.token;
  let body;
  if (o.file !== undefined) {
    // A file sent as it is (an import's zip).
    headers['Content-Type'] = o.file.type || 'application/zip';
    body = o.file;
  } else if (o.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(o.body);
  }
  return fetch(path, { method: o.method || 'GET', headers, body, cache: 'no-store' })
    .catch(() => { throw failure(0); })
    .then((r) => {
      if (r.ok && o.raw) return r;
      if (r.status === 204) return null;
      return r.text().then((text) => {
        let body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!r.ok) {
          const err = failure(r.status, body);
          err.retryAfter = Number(r.headers.get('Retry-After')) || 0;
          throw err;
        }
        return body;
      });
    });
}
