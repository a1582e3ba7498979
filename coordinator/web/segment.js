// A segment: topology, the policy as a reachability matrix, a "can A reach B?" box,
// members, and (for operators) the policy editor and segment actions.

import { api, get, me, seg, ApiError } from './api.js';
import { h, fill, table, section, notice, when, labels, field } from './dom.js';
import { renderMatrix } from './matrix.js';
import { topology } from './topology.js';
import { policyEditor, pretty } from './policy_editor.js';
import { segmentActions } from './actions.js';

export async function segmentPage(main, name, flash) {
  const base = `/v1/segments/${seg(name)}`;
  const [s, members, policy, matrix, nodes, flows] = await Promise.all([
    get(base), get(`/v1/members?segment=${seg(name)}`), get(`${base}/policy`),
    get(`${base}/policy/matrix`), get('/v1/nodes'),
    get(`/v1/flows?segment=${seg(name)}&limit=1000`).catch(() => []),
  ]);
  const lastSeen = new Map(nodes.map((n) => [n.id, n.last_seen]));
  const lastFlow = new Map();
  for (const f of flows) {
    for (const m of [f.member, f.peer]) if (m) lastFlow.set(m, Math.max(lastFlow.get(m) || 0, f.last_seen));
  }
  const reload = (message) => segmentPage(main, name, message);

  fill(main,
    h('p.crumbs', h('a', { href: '#/' }, 'Overview'), ' / ', name),
    h('h1', `Segment ${name}`),
    flash ? notice('ok', flash) : null,
    h('p.meta', `${s.cidr} \u00b7 default ${s.default} \u00b7 ${s.members} member${s.members === 1 ? '' : 's'} \u00b7 policy `,
      s.policy_version ? `v${s.policy_version}` : 'none', ` \u00b7 key v${s.psk_version} \u00b7 `,
      h('a', { href: `#/flows?segment=${seg(name)}` }, 'flows')),
    me.canEdit() ? segmentActions(s, members, reload) : null,
    section('Topology', topology(members, matrix)),
    section('Reachability',
      h('p.muted', 'Rows reach columns: a cell lists the ports on which the row member may open connections to the column member. Replies of an allowed connection always pass.'),
      renderMatrix(matrix, 'matrix-live'),
      checkBox(name, members)),
    section('Members',
      table('Members', ['Member', 'Address', 'Node', 'Labels', 'Endpoints', 'Node last seen', 'Last flow'],
        members.map((m) => [
          h('strong', m.name), m.address, m.node || h('span.muted', 'stock WireGuard'), labels(m.labels),
          m.endpoints.length ? m.endpoints.join(', ') : h('span.muted', 'waits for it'),
          m.node_id && lastSeen.has(m.node_id) ? when(lastSeen.get(m.node_id)) : h('span.muted', '\u2014'),
          lastFlow.has(m.name) ? when(lastFlow.get(m.name)) : h('span.muted', 'none logged'),
        ]), 'No members yet: create a join token and enroll a node.')),
    section('Policy', me.canEdit()
      ? policyEditor(name, policy, reload)
      : h('pre.policy', { 'aria-label': 'Policy in force', tabindex: 0 }, pretty(policy.policy))));
}

function checkBox(name, members) {
  const opts = () => members.map((m) => h('option', { value: m.name }, m.name));
  const from = h('select', { name: 'from' }, opts());
  const to = h('select', { name: 'to' }, opts());
  if (members.length > 1) to.selectedIndex = 1;
  const port = h('input', { name: 'port', value: 'tcp/80', size: 10, spellcheck: 'false' });
  const out = h('div.check-result', { 'aria-live': 'polite' });
  const form = h('form.check', { 'aria-label': 'Check a connection' },
    h('h3', 'Can A reach B?'),
    h('div.row', field('From', from), field('To', to), field('Port', port, 'tcp/N, udp/N or icmp'),
      h('button.primary', { type: 'submit', disabled: members.length < 1 }, 'Check')),
    out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const r = await api('POST', `/v1/segments/${seg(name)}/policy/check`, { from: from.value, to: to.value, port: port.value.trim() });
      fill(out, h(`p.verdict.${r.allowed ? 'ok' : 'deny'}`, { role: 'status' },
        h('strong', r.allowed ? 'Allowed' : 'Denied'), ` \u2014 ${from.value} \u2192 ${to.value} on ${port.value.trim()}: ${r.reason}.`));
    } catch (x) {
      fill(out, notice('error', x instanceof ApiError ? x.message : String(x)));
    }
  });
  return form;
}
