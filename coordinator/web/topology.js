// Topology: nodes as boxes, their members inside, and an edge wherever the policy lets
// one member open connections to another (arrow towards the one connected to).

import { h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const BOX_W = 190, ROW_H = 30, GAP = 50, PER_ROW = 4;

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const k of kids) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

export function topology(members, matrix) {
  if (!members.length) return h('p.muted', 'No members yet.');
  const groups = new Map();
  for (const m of members) {
    const key = m.node || 'stock WireGuard';
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(m);
  }
  const boxes = [...groups.entries()];
  const cols = Math.min(PER_ROW, boxes.length);
  const heights = boxes.map(([, ms]) => 36 + ms.length * ROW_H);
  const rowH = [];
  boxes.forEach((_, i) => { const r = Math.floor(i / cols); rowH[r] = Math.max(rowH[r] || 0, heights[i]); });
  const width = cols * (BOX_W + GAP) + GAP;
  const height = rowH.reduce((a, x) => a + x + GAP, GAP);
  const pos = new Map();
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'topo', role: 'img',
    'aria-label': `Topology: ${boxes.length} node(s), ${members.length} member(s); edges show allowed connections` });
  svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))));
  let y0 = GAP;
  const layer = s('g', { class: 'nodes' });
  boxes.forEach(([node, ms], i) => {
    const r = Math.floor(i / cols), c = i % cols;
    if (c === 0 && r > 0) y0 += rowH[r - 1] + GAP;
    const x = GAP + c * (BOX_W + GAP);
    layer.append(s('rect', { x, y: y0, width: BOX_W, height: heights[i], rx: 8, class: node === 'stock WireGuard' ? 'node ext' : 'node' }),
      s('text', { x: x + 10, y: y0 + 20, class: 'node-name' }, node));
    ms.forEach((m, k) => {
      const my = y0 + 30 + k * ROW_H;
      layer.append(s('rect', { x: x + 10, y: my, width: BOX_W - 20, height: ROW_H - 6, rx: 4, class: 'member' }),
        s('text', { x: x + 18, y: my + 16, class: 'member-name' }, `${m.name} ${m.address}`));
      pos.set(m.name, { x: x + BOX_W / 2, y: my + (ROW_H - 6) / 2, left: x + 10, right: x + BOX_W - 10 });
    });
  });
  svg.append(layer);
  const edges = s('g', { class: 'edges' });
  const idx = new Map(matrix.members.map((n, i) => [n, i]));
  const reach = (a, b) => {
    const c = matrix.cells[idx.get(a)]?.[idx.get(b)];
    return c && (c.by_default || c.ports.length) ? c : null;
  };
  const names = members.map((m) => m.name);
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const ab = reach(names[i], names[j]), ba = reach(names[j], names[i]);
      if (!ab && !ba) continue;
      const a = pos.get(names[i]), b = pos.get(names[j]);
      if (!a || !b) continue;
      const same = a.left === b.left;
      const ax = same ? a.right : (a.x < b.x ? a.right : a.left), bx = same ? b.right : (a.x < b.x ? b.left : b.right);
      const mx = same ? a.right + 40 : (ax + bx) / 2, my = same ? (a.y + b.y) / 2 : (a.y + b.y) / 2 - 20;
      const label = [ab ? `${names[i]} \u2192 ${names[j]}: ${ab.by_default ? 'any' : ab.ports.join(', ')}` : null,
        ba ? `${names[j]} \u2192 ${names[i]}: ${ba.by_default ? 'any' : ba.ports.join(', ')}` : null].filter(Boolean).join('; ');
      const path = s('path', {
        d: `M${ax},${a.y} Q${mx},${my} ${bx},${b.y}`, class: 'edge',
        ...(ab ? { 'marker-end': 'url(#arrow)' } : {}), ...(ba ? { 'marker-start': 'url(#arrow)' } : {}),
      }, s('title', {}, label));
      edges.append(path);
    }
  }
  svg.append(edges);
  return h('div.scroll.topo-wrap', svg);
}
