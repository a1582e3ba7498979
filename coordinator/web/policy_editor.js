// The policy editor: edit the JSON, see the API's validation message inline and the
// matrix the draft would give (previewed by the coordinator, nothing saved), then save.

import { api, seg, ApiError } from './api.js';
import { h, fill, notice, field } from './dom.js';
import { renderMatrix } from './matrix.js';

/** The policy as JSON text, each rule written name, from, to, ports (the file's order). */
export function pretty(policy) {
  const order = ({ name, from, to, ports, ...rest }) => ({ name, from, to, ports, ...rest });
  const p = { ...policy, rules: (policy.rules || []).map(order) };
  return JSON.stringify(p, null, 2);
}

export function policyEditor(name, doc, saved) {
  const base = `/v1/segments/${seg(name)}/policy`;
  const text = h('textarea.code', { name: 'policy', rows: 16, spellcheck: 'false', 'aria-describedby': 'policy-msg' });
  text.value = pretty(doc.policy);
  const msg = h('div', { id: 'policy-msg', 'aria-live': 'polite' });
  const preview = h('div.preview');
  const save = h('button.primary', { type: 'submit' }, 'Save policy');
  let timer = null;
  let seq = 0;

  async function runPreview() {
    const mine = ++seq;
    try {
      const m = await api('POST', `${base}/matrix`, text.value);
      if (mine !== seq) return;
      text.removeAttribute('aria-invalid');
      fill(msg, notice('ok', 'Valid. The matrix below is what saving would give.'));
      fill(preview, h('h3', 'Preview'), renderMatrix(m, 'matrix-preview'));
    } catch (x) {
      if (mine !== seq) return;
      text.setAttribute('aria-invalid', 'true');
      fill(msg, notice('error', x instanceof ApiError ? x.message : String(x)));
      fill(preview);
    }
  }
  text.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(runPreview, 300);
  });

  const form = h('form.editor', { 'aria-label': 'Policy editor' },
    h('p.muted', `Version ${doc.version || 0} is in force. Rules allow connections from `, h('code', 'from'), ' to ', h('code', 'to'),
      ' on ', h('code', 'ports'), '; everything else follows ', h('code', 'default'), '.'),
    field('Policy (JSON)', text),
    msg,
    h('div.row', h('button', { type: 'button', on: { click: runPreview } }, 'Preview'), save),
    preview);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    save.disabled = true;
    try {
      const r = await api('PUT', base, text.value);
      await saved(`Saved: policy version ${r.version} is in force.`);
    } catch (x) {
      text.setAttribute('aria-invalid', 'true');
      fill(msg, notice('error', x instanceof ApiError ? x.message : String(x)));
      save.disabled = false;
    }
  });
  return form;
}
