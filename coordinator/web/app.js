// The console shell: sign-in, navigation by URL hash, and the page router.

import { api, session, ApiError, me } from './api.js';
import { h, fill, notice, field } from './dom.js';
import { overview } from './overview.js';
import { segmentPage } from './segment.js';
import { flowsPage } from './flows.js';
import { auditPage } from './audit.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');

function signInForm(message) {
  nav.hidden = true;
  fill(who);
  const input = h('input', { type: 'password', name: 'apikey', autocomplete: 'off', required: true, spellcheck: 'false', placeholder: 'swk_…' });
  const err = h('div', { 'aria-live': 'polite' }, message ? notice('error', message) : null);
  const form = h('form.card.signin', { 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', 'Paste an API key (', h('code', 'api_key'), ' in admin.conf, or one from ', h('code', 'segwire apikey create'),
      '). It stays in this browser tab only and is forgotten when the tab closes.'),
    field('API key', input),
    err,
    h('button.primary', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key.startsWith('swk_')) {
      fill(err, notice('error', 'That is not an API key: API keys start with swk_.'));
      return;
    }
    session.set(key);
    try {
      await whoami();
      route();
    } catch (x) {
      session.clear();
      fill(err, notice('error', x instanceof ApiError ? x.message : String(x)));
      input.focus();
    }
  });
  fill(main, form);
  input.focus();
}

async function whoami() {
  const w = await api('GET', '/v1/whoami');
  me.role = w.role;
  me.segments = w.segments;
  const scope = w.segments ? ` of ${w.segments.join(', ')}` : '';
  fill(who,
    h('span.role', { 'data-role': w.role, title: `key ${w.key_id}` }, `${w.role}${scope}`),
    h('button.link', { type: 'button', on: { click: signOut } }, 'Sign out'));
  nav.hidden = false;
}

function signOut() {
  session.clear();
  location.hash = '#/';
  signInForm();
}

const PAGES = [
  [/^#?\/?$/, () => overview(main)],
  [/^#\/segment\/([^/?]+)$/, (m) => segmentPage(main, decodeURIComponent(m[1]))],
  [/^#\/flows(?:\?(.*))?$/, (m) => flowsPage(main, new URLSearchParams(m[1] || ''))],
  [/^#\/audit(?:\?(.*))?$/, (m) => auditPage(main, new URLSearchParams(m[1] || ''))],
];

/** Renders the page the hash names. */
export async function route() {
  if (!session.key()) return signInForm();
  for (const a of nav.querySelectorAll('a')) {
    const here = location.hash.split('?')[0] || '#/';
    a.toggleAttribute('aria-current', a.getAttribute('href') === here);
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  const hash = location.hash || '#/';
  const hit = PAGES.map(([re, fn]) => [hash.match(re), fn]).find(([m]) => m);
  try {
    if (!hit) fill(main, notice('error', 'No such page.'), h('a', { href: '#/' }, 'Back to the overview'));
    else await hit[1](hit[0]);
  } catch (x) {
    if (x instanceof ApiError && x.status === 401) return signInForm(x.message);
    fill(main, notice('error', x instanceof ApiError ? x.message : `Something went wrong: ${x}`));
  }
}

window.addEventListener('hashchange', () => {
  route().then(() => main.focus({ preventScroll: true }));
});

(async () => {
  if (!session.key()) return signInForm();
  try {
    await whoami();
  } catch (x) {
    session.clear();
    return signInForm(x instanceof ApiError ? x.message : String(x));
  }
  route();
})();
