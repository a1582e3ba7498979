// The reachability matrix: rows reach columns, each cell lists ports.

import { h } from './dom.js';

/** A table for a Matrix from /v1/segments/{name}/policy/matrix. */
export function renderMatrix(m, id) {
  if (!m.members.length) return h('p.muted', { id }, 'No members, so nothing to show yet.');
  const head = h('tr', h('th', { scope: 'col', class: 'corner' }, 'from \u2193 / to \u2192'),
    m.members.map((n) => h('th', { scope: 'col' }, n)));
  const rows = m.members.map((from, i) => h('tr',
    h('th', { scope: 'row' }, from),
    m.cells[i].map((c, j) => cell(c, from, m.members[j], i === j))));
  return h('div.scroll', { id, tabindex: 0, role: 'region', 'aria-label': `Reachability matrix of ${m.segment}` },
    h('table.matrix', { 'data-default': m.default },
      h('caption', `Policy default: ${m.default}. Rows reach columns.`),
      h('thead', head), h('tbody', rows)));
}

function cell(c, from, to, self) {
  const attrs = { 'data-from': from, 'data-to': to };
  if (self) return h('td.self', { ...attrs, 'aria-label': 'same member' }, '\u00b7');
  if (c.by_default) {
    return h('td.allow.default', { ...attrs, title: 'allowed by the segment default' }, 'any', c.rules.length ? h('small', ` (${c.ports.join(', ')})`) : null);
  }
  if (!c.ports.length) return h('td.none', { ...attrs, title: `${from} cannot open connections to ${to}` }, '\u2014');
  return h('td.allow', { ...attrs, title: `rules: ${c.rules.join(', ')}` }, c.ports.join(', '));
}
