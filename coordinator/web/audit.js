// The audit log: every change, who made it, from where, and the state before and after.

import { get } from './api.js';
import { h, fill, table, section, when, field } from './dom.js';

export async function auditPage(main, params) {
  const actor = params.get('actor') || '';
  const target = params.get('target') || '';
  const q = new URLSearchParams({ limit: '500' });
  if (actor) q.set('actor', actor);
  if (target) q.set('target', target);
  const records = (await get(`/v1/audit?${q}`)).reverse();
  const a = h('input', { name: 'actor', value: actor, placeholder: 'key:… or node:…', spellcheck: 'false' });
  const t = h('input', { name: 'target', value: target, placeholder: 'segment:web', spellcheck: 'false' });
  const form = h('form.filters', { 'aria-label': 'Audit filters' },
    h('div.row', field('Actor', a), field('Target starts with', t), h('button.primary', { type: 'submit' }, 'Apply')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (a.value.trim()) p.set('actor', a.value.trim());
    if (t.value.trim()) p.set('target', t.value.trim());
    location.hash = `#/audit?${p}`;
  });
  fill(main, h('h1', 'Audit log'), form,
    section(`${records.length} record${records.length === 1 ? '' : 's'}, newest first`,
      table('Audit log', ['When', 'Actor', 'Source', 'Action', 'Target', 'Change'],
        records.map((r) => [when(r.at), h('code', r.actor), r.source || '\u2014', h('strong', r.action), r.target, change(r)]),
        'No changes recorded yet.')));
}

function change(r) {
  if (r.before === null && r.after === null) return h('span.muted', '\u2014');
  return h('details', h('summary', r.before === null ? 'created' : r.after === null ? 'deleted' : 'changed'),
    r.before !== null ? h('div', h('small', 'before'), h('pre.code', JSON.stringify(r.before, null, 2))) : null,
    r.after !== null ? h('div', h('small', 'after'), h('pre.code', JSON.stringify(r.after, null, 2))) : null);
}
