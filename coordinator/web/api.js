// Calls to the coordinator's REST API with the signed-in key as a Bearer header.
// The key lives in sessionStorage only: never in a URL, a cookie or a log line.

const KEY = 'segwire.apikey';

export const session = {
  key: () => sessionStorage.getItem(KEY),
  set: (k) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

const RANK = { viewer: 0, operator: 1, admin: 2 };

/** What the signed-in key may do (from /v1/whoami); the API still checks every request. */
export const me = {
  role: 'viewer',
  segments: null,
  canEdit: () => RANK[me.role] >= RANK.operator,
  isGlobal: () => me.segments === null,
};

/** An API refusal: the status and one sentence to show. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function sentence(status, text) {
  try {
    const j = JSON.parse(text);
    if (j && typeof j.error === 'string') return j.error;
  } catch (_) { /* not JSON */ }
  if (status === 401) return 'The coordinator did not accept this API key: it is wrong, revoked or expired. Check the key and sign in again.';
  if (status === 403) return 'Your API key\u2019s role or segments do not allow this.';
  if (status === 429) return 'Too many failed attempts from this address; wait a few seconds and try again.';
  const t = (text || '').trim();
  return t ? t : `The coordinator answered with status ${status}.`;
}

/** One request; resolves to the parsed JSON body (null for 204), rejects with ApiError. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.key() || ''}` };
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, { method, headers, body: payload, cache: 'no-store', credentials: 'omit', redirect: 'error' });
  } catch (e) {
    throw new ApiError(0, 'Cannot reach the coordinator; check that it is running and reload the page.');
  }
  if (r.status === 204) return null;
  const text = await r.text();
  if (!r.ok) throw new ApiError(r.status, sentence(r.status, text));
  return text ? JSON.parse(text) : null;
}

export const get = (p) => api('GET', p);

/** Encodes one path segment. */
export const seg = (s) => encodeURIComponent(s);
