// Sign-in: an API key (`adb_...`) or an OIDC bearer token, kept in sessionStorage for
// this tab only and sent as `Authorization: Bearer` on every request.

import { api, ApiError, setCredential } from '../api.js';
import { errorBox, field, h } from '../dom.js';

export const title = 'Sign in';

export function render(main, onSignedIn) {
  const input = h('input', {
    type: 'password',
    id: 'credential',
    name: 'credential',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
  });
  const status = h('div', { class: 'signin-status', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'signin-submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin', novalidate: true },
    h('h1', { tabindex: '-1' }, 'Sign in to AgentDB'),
    h('p', null, 'This server requires authentication. Paste an API key or an OIDC access token.'),
    field('API key or OIDC token', input, 'Kept in this browser tab only (sessionStorage) and sent as a bearer credential.'),
    status,
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.replaceChildren();
    const value = input.value.trim();
    if (!value) {
      status.append(errorBox(new Error('enter a key or token')));
      input.focus();
      return;
    }
    submit.disabled = true;
    setCredential(value);
    try {
      await api.get('/v1/collections');
      input.value = '';
      await onSignedIn();
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) {
        // A valid credential that may not list collections: still signed in.
        input.value = '';
        await onSignedIn();
        return;
      }
      setCredential('');
      const message =
        err instanceof ApiError && err.status === 401
          ? new Error(`the server refused this credential: ${err.message}`)
          : err;
      status.append(errorBox(message));
      submit.disabled = false;
      input.focus();
    }
  });
  main.append(form);
  input.focus();
}
