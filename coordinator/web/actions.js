// Changes an operator may make: segments, join tokens, stock WireGuard peers, key
// rotation, node revocation. Each shows the API's answer; the API checks the role again.

import { api, seg, ApiError } from './api.js';
import { h, fill, notice, field } from './dom.js';

const errText = (x) => (x instanceof ApiError ? x.message : String(x));

/** A modal dialog (Escape closes it; focus stays inside while open). */
function dialog(title, ...body) {
  const d = h('dialog', { 'aria-labelledby': 'dlg-title' },
    h('div.dlg-head', h('h2', { id: 'dlg-title' }, title),
      h('button.link', { type: 'button', 'aria-label': 'Close', on: { click: () => d.close() } }, 'Close')),
    body);
  d.addEventListener('close', () => d.remove());
  document.body.append(d);
  d.showModal();
  return d;
}

function parseLabels(text) {
  const out = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [k, ...v] = part.split('=');
    if (!k || !v.length) throw new Error(`label ${JSON.stringify(part)}: write key=value`);
    out[k.trim()] = v.join('=').trim();
  }
  return out;
}

/** A field that shows a secret once, with a copy button. */
function secretBox(label, value, hint) {
  const input = h('input.code', { readonly: true, value, spellcheck: 'false' });
  const status = h('span.muted', { 'aria-live': 'polite' });
  const copy = h('button', { type: 'button', on: { click: async () => {
    try {
      await navigator.clipboard.writeText(value);
      status.textContent = 'Copied.';
    } catch (_) {
      input.select();
      status.textContent = 'Select and copy it yourself (Ctrl+C): the browser refused the clipboard.';
    }
  } } }, 'Copy');
  return h('div', field(label, input, hint), h('div.row', copy, status));
}

export function createSegmentForm(done) {
  const name = h('input', { name: 'name', required: true, pattern: '[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?', spellcheck: 'false' });
  const cidr = h('input', { name: 'cidr', required: true, placeholder: '100.64.9.0/24', spellcheck: 'false' });
  const def = h('select', { name: 'default' }, h('option', { value: 'deny' }, 'deny'), h('option', { value: 'allow' }, 'allow'));
  const msg = h('div', { 'aria-live': 'polite' });
  const form = h('form.inline', { 'aria-label': 'Create a segment' },
    h('h3', 'Create a segment'),
    h('div.row', field('Name', name, 'lowercase DNS label'), field('Network', cidr, 'IPv4, /8 to /30'), field('Default', def),
      h('button.primary', { type: 'submit' }, 'Create segment')),
    msg);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/v1/segments', { name: name.value.trim(), cidr: cidr.value.trim(), default: def.value });
      await done();
    } catch (x) {
      fill(msg, notice('error', errText(x)));
    }
  });
  return form;
}

export async function revokeNode(node, done) {
  if (!window.confirm(`Revoke node ${node.name}? Its members are removed and it can no longer connect.`)) return;
  try {
    await api('DELETE', `/v1/nodes/${seg(node.id)}`);
    await done();
  } catch (x) {
    window.alert(errText(x));
  }
}

/** The action bar of a segment page. */
export function segmentActions(s, members, reload) {
  const base = `/v1/segments/${seg(s.name)}`;
  const msg = h('div', { 'aria-live': 'polite' });
  const rotate = async () => {
    if (!window.confirm(`Rotate the preshared key of ${s.name}? Agents pick the new key up by themselves; stock WireGuard devices need their configuration again.`)) return;
    try {
      const r = await api('POST', `${base}/rotate-key`);
      await reload(`Key rotated: preshared key v${r.psk_version} is in force.`);
    } catch (x) { fill(msg, notice('error', errText(x))); }
  };
  const del = async () => {
    const n = members.length;
    if (!window.confirm(n ? `Delete ${s.name} and detach its ${n} member(s)?` : `Delete segment ${s.name}?`)) return;
    try {
      await api('DELETE', `${base}${n ? '?force=true' : ''}`);
      location.hash = '#/';
    } catch (x) { fill(msg, notice('error', errText(x))); }
  };
  return h('div.actions', { role: 'toolbar', 'aria-label': 'Segment actions' },
    h('button', { type: 'button', on: { click: () => tokenDialog(s.name) } }, 'Create join token'),
    h('button', { type: 'button', on: { click: () => peerDialog(s.name, reload) } }, 'Add WireGuard peer'),
    h('button', { type: 'button', on: { click: rotate } }, 'Rotate key'),
    h('button.danger', { type: 'button', on: { click: del } }, 'Delete segment'),
    msg);
}

function tokenDialog(segment) {
  const lbl = h('input', { name: 'labels', placeholder: 'app=web, tier=front', spellcheck: 'false' });
  const ttl = h('select', { name: 'ttl' }, [['1 hour', 3600], ['1 day', 86400], ['7 days', 604800]].map(([t, v]) => h('option', { value: v }, t)));
  const uses = h('input', { name: 'uses', type: 'number', min: 1, max: 100000, value: 1 });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', h('p', `A join token lets nodes enroll into ${segment}.`),
    field('Labels for its members', lbl, 'optional, key=value, comma-separated'),
    h('div.row', field('Valid for', ttl), field('Uses', uses)),
    h('button.primary', { type: 'submit' }, 'Create token'), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const r = await api('POST', '/v1/tokens', { segments: [segment], labels: parseLabels(lbl.value), ttl_seconds: Number(ttl.value), uses: Number(uses.value) });
      fill(form, notice('ok', `Token ${r.id} created; it expires ${r.expires_at}. It is shown only now.`),
        secretBox('Join token', r.token, 'on the node: segwire-node join TOKEN'));
    } catch (x) { fill(out, notice('error', errText(x))); }
  });
  dialog(`Join token for ${segment}`, form);
}

const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));

/** An X25519 key pair made in this browser, as WireGuard base64 keys; null if unsupported. */
async function keyPair() {
  try {
    const kp = await crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
    const pub = await crypto.subtle.exportKey('raw', kp.publicKey);
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', kp.privateKey));
    return { pub: b64(pub), priv: b64(pkcs8.slice(pkcs8.length - 32)) };
  } catch (_) {
    return null;
  }
}

/** A wg-quick configuration from a PeerConfig (as `segwire peer add` prints it). */
export function wgQuick(c, priv) {
  const p = c.peer;
  const lines = [`# segwire external member "${p.name}" of segment "${p.segment}" (${c.cidr}), preshared key v${c.psk_version}`,
    '[Interface]', `Address = ${p.address}/32`, `PrivateKey = ${priv || '<your private key>'}`];
  if (p.endpoint) lines.push(`ListenPort = ${p.endpoint.split(':').pop()}`);
  for (const x of c.peers) {
    lines.push('', `# ${x.name}${x.node ? ` on ${x.node}` : ''}`, '[Peer]', `PublicKey = ${x.public_key}`, `PresharedKey = ${c.psk}`);
    if (x.endpoint) lines.push(`Endpoint = ${x.endpoint}`);
    lines.push(`AllowedIPs = ${x.address}/32`, 'PersistentKeepalive = 25');
  }
  return lines.join('\n') + '\n';
}

function peerDialog(segment, reload) {
  const name = h('input', { name: 'peer-name', required: true, spellcheck: 'false' });
  const key = h('input', { name: 'public-key', spellcheck: 'false', placeholder: 'leave empty: a key pair is made in this browser' });
  const endpoint = h('input', { name: 'endpoint', placeholder: '198.18.0.9:51820', spellcheck: 'false' });
  const lbl = h('input', { name: 'peer-labels', placeholder: 'role=laptop', spellcheck: 'false' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', h('p', 'A device running stock WireGuard (wg-quick, a phone, an appliance) joins as an external member.'),
    field('Name', name), field('Public key', key, 'optional: the device\u2019s WireGuard public key'),
    field('Endpoint', endpoint, 'optional IP:port where the device listens'), field('Labels', lbl, 'optional, key=value'),
    h('button.primary', { type: 'submit' }, 'Add peer'), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      let pair = null;
      if (!key.value.trim()) {
        pair = await keyPair();
        if (!pair) throw new Error('This browser cannot make X25519 keys; paste the device\u2019s public key (wg pubkey).');
      }
      const body = { segment, name: name.value.trim(), public_key: pair ? pair.pub : key.value.trim(), labels: parseLabels(lbl.value) };
      if (endpoint.value.trim()) body.endpoint = endpoint.value.trim();
      const c = await api('POST', '/v1/peers', body);
      const conf = wgQuick(c, pair && pair.priv);
      const url = URL.createObjectURL(new Blob([conf], { type: 'text/plain' }));
      fill(form, notice('ok', `${c.peer.name} has address ${c.peer.address}. ${pair ? 'Its private key was made here and is only in this file.' : ''}`),
        h('pre.code', { tabindex: 0, 'aria-label': 'WireGuard configuration' }, conf),
        h('div.row', h('a.button.primary', { href: url, download: `${c.peer.name}.conf` }, `Download ${c.peer.name}.conf`)));
      form.closest('dialog').addEventListener('close', () => { URL.revokeObjectURL(url); reload(); });
    } catch (x) { fill(out, notice('error', errText(x))); }
  });
  dialog(`Add a WireGuard peer to ${segment}`, form);
}
