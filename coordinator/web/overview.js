// Overview: nodes online and offline, segments with member counts, recent events.

import { get, me, seg, ApiError } from './api.js';
import { h, fill, table, section, when, labels } from './dom.js';
import { createSegmentForm, revokeNode } from './actions.js';

export async function overview(main) {
  const [segments, nodes, presence] = await Promise.all([
    get('/v1/segments'), get('/v1/nodes'), get('/v1/presence'),
  ]);
  let events = null;
  let eventsNote = null;
  if (me.isGlobal()) {
    try {
      events = (await get('/v1/events?limit=1000')).slice(-15).reverse();
    } catch (x) {
      eventsNote = x instanceof ApiError ? x.message : String(x);
    }
  } else {
    eventsNote = 'Events are shown to keys not limited to segments.';
  }
  const online = new Set(presence.online);
  const up = nodes.filter((n) => online.has(n.id)).length;
  const members = segments.reduce((a, s) => a + s.members, 0);
  const refresh = () => overview(main);

  fill(main,
    h('h1', 'Overview'),
    h('div.stats',
      stat('Nodes online', up, 'ok'), stat('Nodes offline', nodes.length - up, nodes.length - up ? 'warn' : ''),
      stat('Segments', segments.length), stat('Members', members)),
    section('Segments',
      table('Segments', ['Segment', 'Network', 'Default', 'Members', 'Policy', 'Key'],
        segments.map((s) => [
          h('a', { href: `#/segment/${seg(s.name)}` }, s.name), s.cidr, s.default, String(s.members),
          s.policy_version ? `v${s.policy_version}` : 'none (default)', `v${s.psk_version}`,
        ]), 'No segments yet.'),
      me.canEdit() && me.isGlobal() ? createSegmentForm(refresh) : null),
    section('Nodes',
      table('Nodes', ['Node', 'State', 'Segments', 'Members', 'Labels', 'Endpoints', 'Last seen', ''],
        nodes.map((n) => [
          n.name,
          online.has(n.id) ? h('span.badge.ok', 'online') : h('span.badge.off', 'offline'),
          n.segments.join(', '), String(n.members), labels(n.labels),
          (n.endpoints.length ? n.endpoints : [n.observed_address || '\u2014']).join(', '),
          when(n.last_seen),
          me.canEdit() ? h('button.danger.small', { type: 'button', on: { click: () => revokeNode(n, refresh) } }, 'Revoke') : '',
        ]), 'No node has enrolled yet.')),
    section('Recent events',
      eventsNote ? h('p.muted', eventsNote) :
        table('Recent events', ['When', 'Event', 'Subject', 'Details'],
          events.map((e) => [when(e.at), e.kind, e.subject, h('code', JSON.stringify(e.data))]),
          'No events yet.')));
}

function stat(label, value, kind) {
  return h(`div.stat${kind ? '.' + kind : ''}`, h('span.num', String(value)), h('span.lbl', label));
}
