// Small DOM helpers. Text always goes in through textContent: nothing the dashboard shows is
// ever parsed as HTML.

export const $ = (id) => document.getElementById(id);

/** A new element with `text` (as text) and `cls`. */
export function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text != null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

/** A table body holding one full-width row with `text` (loading, error, empty). */
export function messageRow(tbody, text, cls, columns) {
  tbody.textContent = '';
  const tr = el('tr', null, 'message');
  const td = el('td', text, cls || 'muted');
  td.colSpan = columns || 1;
  tr.appendChild(td);
  tbody.appendChild(tr);
}

/** Copies `text` to the clipboard; reports in `status` (a live region). */
export function copyText(text, status) {
  const done = () => {
    status.textContent = 'Copied';
    setTimeout(() => { if (status.textContent === 'Copied') status.textContent = ''; }, 2000);
  };
  const fail = () => { status.textContent = 'Select the text and copy it'; };
  if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).then(done, fail);
  else fail();
}
