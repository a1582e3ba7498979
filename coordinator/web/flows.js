// Flows: denied first, filtered by segment, member and time; live (refreshed every few
// seconds) unless switched off.

import { get, seg } from './api.js';
import { h, fill, table, section, when, field } from './dom.js';

const LIVE_MS = 3000;
let timer = null;
window.addEventListener('hashchange', () => { clearInterval(timer); timer = null; });

const SINCE = [['last 15 minutes', 900], ['last hour', 3600], ['last 24 hours', 86400], ['everything kept', 0]];

export async function flowsPage(main, params) {
  clearInterval(timer);
  const segments = await get('/v1/segments');
  const f = {
    segment: params.get('segment') || '',
    member: params.get('member') || '',
    since: Number(params.get('since') ?? 3600),
    denied: params.get('denied') === '1',
    live: params.get('live') !== '0',
  };
  const segSel = h('select', { name: 'segment' }, h('option', { value: '' }, 'all segments'),
    segments.map((s) => h('option', { value: s.name, selected: s.name === f.segment }, s.name)));
  const member = h('input', { name: 'member', value: f.member, placeholder: 'any member', spellcheck: 'false' });
  const since = h('select', { name: 'since' }, SINCE.map(([t, v]) => h('option', { value: v, selected: v === f.since }, t)));
  const denied = h('input', { type: 'checkbox', name: 'denied', checked: f.denied });
  const live = h('input', { type: 'checkbox', name: 'live', checked: f.live });
  const form = h('form.filters', { 'aria-label': 'Flow filters' },
    h('div.row', field('Segment', segSel), field('Member', member), field('Time', since),
      h('div.field.check', h('label', denied, ' denied only')),
      h('div.field.check', h('label', live, ` live (every ${LIVE_MS / 1000} s)`)),
      h('button.primary', { type: 'submit' }, 'Apply')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (segSel.value) p.set('segment', segSel.value);
    if (member.value.trim()) p.set('member', member.value.trim());
    p.set('since', since.value);
    if (denied.checked) p.set('denied', '1');
    if (!live.checked) p.set('live', '0');
    location.hash = `#/flows?${p}`;
  });
  const results = h('div', { id: 'flow-results' });
  fill(main, h('h1', 'Flows'), form, results);
  await load(f, results);
  if (f.live) {
    timer = setInterval(() => {
      if (!location.hash.startsWith('#/flows')) return clearInterval(timer);
      load(f, results).catch(() => {});
    }, LIVE_MS);
  }
}

async function load(f, results) {
  const q = new URLSearchParams({ limit: '1000' });
  if (f.segment) q.set('segment', f.segment);
  if (f.denied) q.set('denied', 'true');
  if (f.since) q.set('since', String(Math.floor(Date.now() / 1000) - f.since));
  const all = await get(`/v1/flows?${q}`);
  const rows = all
    .filter((r) => !f.member || r.member === f.member || r.peer === f.member)
    .sort((a, b) => (a.verdict === b.verdict ? b.last_seen - a.last_seen : a.verdict === 'denied' ? -1 : 1));
  const nDenied = rows.filter((r) => r.verdict === 'denied').length;
  fill(results,
    section(`${rows.length} flow record${rows.length === 1 ? '' : 's'}, ${nDenied} denied`,
      table('Flows', ['Verdict', 'Segment', 'Member', 'Direction', 'Protocol', 'Source', 'Destination', 'Peer', 'Rule', 'Count', 'Last seen'],
        rows.map((r) => ({
          class: r.verdict,
          cells: [h(`span.badge.${r.verdict === 'denied' ? 'deny' : 'ok'}`, r.verdict),
            h('a', { href: `#/segment/${seg(r.segment)}` }, r.segment), r.member, r.direction, r.protocol, r.src,
            r.dst_port ? `${r.dst}:${r.dst_port}` : r.dst, r.peer || '\u2014', r.rule || 'default', String(r.count), when(r.last_seen)],
        })), 'No flows match. Agents ship flow records every few seconds while traffic passes.')));
}
