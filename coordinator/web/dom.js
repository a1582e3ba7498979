// Tiny DOM helpers: every text goes in through textContent, never as markup.

/** h('tag.class', {attr: v, on: {click: fn}}, ...children) */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** A table with a header row; rows are arrays of cells (text or nodes). */
export function table(caption, headers, rows, empty = 'Nothing yet.') {
  if (!rows.length) return h('p.muted', empty);
  return h('div.scroll', { tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', h('caption.sr', caption),
      h('thead', h('tr', headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', rows.map((r) => h('tr', r.cells ? { class: r.class } : null,
        (r.cells || r).map((c) => h('td', c)))))));
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A message that screen readers announce; kind: 'error' | 'ok' | ''. */
export function notice(kind, text) {
  return h(`p.notice.${kind || 'info'}`, { role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** "3 min ago" for an RFC 3339 string or unix seconds. */
export function ago(t) {
  if (t === null || t === undefined || t === '') return 'never';
  const ms = typeof t === 'number' ? t * 1000 : Date.parse(t);
  if (Number.isNaN(ms)) return String(t);
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 16);
}

/** A time element with the exact time as a tooltip. */
export function when(t) {
  const ms = typeof t === 'number' ? t * 1000 : Date.parse(t);
  const iso = Number.isNaN(ms) || t === null || t === undefined ? '' : new Date(ms).toISOString();
  return h('time', { datetime: iso, title: iso }, ago(t));
}

/** Labels as small chips. */
export function labels(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h('span.muted', '\u2014');
  return h('span.chips', entries.map(([k, v]) => h('span.chip', `${k}=${v}`)));
}

/** A section with a heading. */
export function section(title, ...body) {
  const id = 's-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section.card', { 'aria-labelledby': id }, h('h2', { id }, title), body);
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || ('f-' + Math.random().toString(36).slice(2, 9));
  input.id = id;
  return h('div.field', h('label', { for: id }, label), input, hint ? h('small.muted', hint) : null);
}
