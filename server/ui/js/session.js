// Who is signed in and what the console should offer them. The server checks every
// request anyway; this only decides which buttons to show. The source is
// `GET /v1/whoami` (Security/WhoAmI); a server without it is probed through the keys
// listing (admin only) and otherwise everything is offered and the server says no.

import { api, ApiError, authenticationRequired, credential, setCredential } from './api.js';

export const session = {
  authEnabled: false,
  signedIn: false,
  id: '',
  name: '',
  role: '',
  scope: [],
  rowFilter: '',
  canAdmin: true,
  // collection -> {read, write, admin}; null = unknown (no WhoAmI): offer everything
  permissions: null,
  source: 'open',
};

function reset() {
  Object.assign(session, {
    signedIn: false,
    id: '',
    name: '',
    role: '',
    scope: [],
    rowFilter: '',
    canAdmin: false,
    permissions: null,
    source: '',
  });
}

async function loadWhoAmI() {
  try {
    const me = await api.get('/v1/whoami');
    session.id = me.id || '';
    session.name = me.name || '';
    session.role = me.role || '';
    session.scope = me.collections || [];
    session.rowFilter = me.rowFilter || '';
    session.canAdmin = Boolean(me.canAdmin);
    session.permissions = new Map((me.permissions || []).map((p) => [p.collection, p]));
    session.source = 'whoami';
    if (me.authEnabled === false) session.authEnabled = false;
    return true;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 501)) return false;
    throw err;
  }
}

async function probeAdmin() {
  try {
    await api.get('/v1/keys');
    session.canAdmin = true;
    session.role = 'admin';
  } catch (err) {
    if (!(err instanceof ApiError) || (err.status !== 403 && err.status !== 404)) throw err;
    session.canAdmin = false;
  }
  session.source = 'probe';
}

// Decides whether a sign-in is needed; when a credential is stored, checks it.
// Returns 'open', 'signed-in' or 'sign-in'.
export async function establish() {
  // With a stored credential, WhoAmI answers both questions (is authentication on, who
  // is this) without the unauthenticated probe, whose 401 the browser would log.
  if (credential()) {
    try {
      session.authEnabled = true;
      session.permissions = new Map();
      if (await loadWhoAmI()) {
        session.signedIn = true;
        if (!session.authEnabled) {
          session.canAdmin = true;
          return 'open';
        }
        return 'signed-in';
      }
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) throw err;
      setCredential('');
      reset();
    }
  }
  session.authEnabled = await authenticationRequired();
  if (!session.authEnabled) {
    session.signedIn = true;
    session.canAdmin = true;
    session.role = 'local';
    session.source = 'open';
    session.permissions = null;
    await loadWhoAmI().catch(() => false);
    session.canAdmin = session.canAdmin || session.source !== 'whoami';
    return 'open';
  }
  if (!credential()) {
    reset();
    return 'sign-in';
  }
  try {
    if (!(await loadWhoAmI())) {
      await api.get('/v1/collections');
      await probeAdmin();
    }
    session.signedIn = true;
    return 'signed-in';
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      setCredential('');
      reset();
      return 'sign-in';
    }
    throw err;
  }
}

export function signOut() {
  setCredential('');
  reset();
}

// Per-collection permissions come from WhoAmI for the collections named in the query;
// views that list collections ask for theirs before deciding which buttons to show.
export async function ensurePermissions(names) {
  if (!session.authEnabled || session.source !== 'whoami') return;
  const missing = [...new Set(names)].filter((n) => !session.permissions.has(n));
  for (let i = 0; i < missing.length; i += 40) {
    const chunk = missing.slice(i, i + 40);
    const query = chunk.map((n) => `collections=${encodeURIComponent(n)}`).join('&');
    try {
      const me = await api.get(`/v1/whoami?${query}`);
      for (const p of me.permissions || []) session.permissions.set(p.collection, p);
    } catch {
      return; // the server checks every request anyway
    }
  }
}

function permissionFor(collection) {
  if (!session.authEnabled || session.permissions === null) return null;
  return session.permissions.get(collection) || null;
}

export function canAdmin(collection) {
  if (!session.authEnabled) return true;
  if (collection === undefined) return session.canAdmin;
  const p = permissionFor(collection);
  return p ? Boolean(p.admin) : session.canAdmin;
}

export function canWrite(collection) {
  if (!session.authEnabled) return true;
  if (session.permissions === null) return session.canAdmin || session.source === 'probe';
  if (collection === undefined) return canWriteSomewhere();
  const p = permissionFor(collection);
  return p ? Boolean(p.write) : session.canAdmin;
}

// Actions that are not about one collection (agent state, events, running workflows)
// need the `write` action somewhere.
export function canWriteSomewhere() {
  if (!session.authEnabled) return true;
  if (session.canAdmin) return true;
  if (session.role === 'writer' || session.role === 'admin') return true;
  if (session.permissions === null) return session.source === 'probe';
  return [...session.permissions.values()].some((p) => p.write);
}

export function describePrincipal() {
  if (!session.authEnabled) return 'authentication off';
  const who = session.name || session.id || 'signed in';
  return session.role ? `${who} (${session.role})` : who;
}
