// The console's shell: establishes the session, then routes `#/view/arg` to a view
// module. Each view's render(main, args) may return a cleanup function (stop polling,
// close streams, revoke object URLs), called before the next view renders.

import { onUnauthorized } from './api.js';
import { clear, errorBox, h, button, toast } from './dom.js';
import { describePrincipal, establish, session, signOut } from './session.js';
import * as signin from './views/signin.js';
import * as collections from './views/collections.js';
import * as search from './views/search.js';
import * as ingest from './views/ingest.js';
import * as agents from './views/agents.js';
import * as workflows from './views/workflows.js';
import * as operations from './views/operations.js';

const views = { collections, search, ingest, agents, workflows, operations };
const main = document.getElementById('main');
let cleanup = null;
let state = 'loading';

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [name, ...rest] = raw.split('/');
  return { name: name || 'collections', args: rest.map((x) => decodeURIComponent(x)) };
}

function renderWhoAmI() {
  const host = document.getElementById('whoami');
  clear(host);
  if (state === 'sign-in') return;
  host.append(h('span', { class: 'principal' }, describePrincipal()));
  if (session.authEnabled) {
    host.append(
      button('Sign out', () => {
        signOut();
        state = 'sign-in';
        route();
      }, { class: 'link-button' }),
    );
  }
}

function markNav(name) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a view's cleanup must not stop navigation */
    }
    cleanup = null;
  }
  clear(main);
  renderWhoAmI();
  const nav = document.getElementById('nav');
  if (state === 'sign-in') {
    nav.hidden = true;
    markNav('');
    document.title = 'Sign in · AgentDB console';
    cleanup = signin.render(main, async () => {
      await start();
    });
    return;
  }
  nav.hidden = false;
  const { name, args } = parseHash();
  const view = views[name];
  markNav(view ? name : '');
  if (!view) {
    main.append(h('h1', null, 'Not found'), h('p', null, 'There is no such page. Pick one from the menu.'));
    return;
  }
  document.title = `${view.title} · AgentDB console`;
  try {
    cleanup = view.render(main, args) || null;
  } catch (err) {
    main.append(errorBox(err));
  }
  const heading = main.querySelector('h1');
  if (heading && document.activeElement !== document.body && !main.contains(document.activeElement)) heading.focus();
}

async function start() {
  clear(main);
  main.append(h('p', { class: 'loading' }, 'Connecting…'));
  try {
    state = await establish();
  } catch (err) {
    clear(main);
    main.append(
      h('h1', null, 'The server could not be reached'),
      errorBox(err),
      button('Try again', () => start()),
    );
    return;
  }
  route();
}

onUnauthorized((err) => {
  // While starting, establish() handles a refused credential itself.
  if (state === 'sign-in' || state === 'loading') return;
  signOut();
  state = 'sign-in';
  toast(`Signed out: the server refused the credential (${err.message})`, 'error');
  route();
});

window.addEventListener('hashchange', () => {
  if (state !== 'loading') route();
});

// The skip link must not change the hash: that is the router's.
document.querySelector('.skip-link').addEventListener('click', (e) => {
  e.preventDefault();
  (main.querySelector('h1') || main).focus();
});

const toggle = document.getElementById('nav-toggle');
toggle.addEventListener('click', () => {
  const open = toggle.getAttribute('aria-expanded') !== 'true';
  toggle.setAttribute('aria-expanded', String(open));
  document.getElementById('nav').classList.toggle('open', open);
});
document.getElementById('nav').addEventListener('click', (e) => {
  if (e.target.closest('a')) {
    toggle.setAttribute('aria-expanded', 'false');
    document.getElementById('nav').classList.remove('open');
  }
});

start();
