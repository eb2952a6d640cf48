// The one place the console talks to the server: every request carries the credential
// from sessionStorage as `Authorization: Bearer`, never in a URL, and never logged.
// Errors come back as ApiError with the server's own message.

const CREDENTIAL_KEY = 'agentdb.credential';

export function credential() {
  return sessionStorage.getItem(CREDENTIAL_KEY) || '';
}

export function setCredential(value) {
  if (value) sessionStorage.setItem(CREDENTIAL_KEY, value);
  else sessionStorage.removeItem(CREDENTIAL_KEY);
}

export class ApiError extends Error {
  constructor(status, grpcStatus, message) {
    super(message);
    this.status = status;
    this.grpcStatus = grpcStatus;
  }
  get notPermitted() {
    return this.status === 403;
  }
}

// Called on a 401 for a request that carried a credential (revoked or expired).
let unauthorizedHandler = null;
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const key = credential();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

export const enc = encodeURIComponent;

async function errorFrom(response) {
  let grpcStatus = '';
  let message = `${response.status} ${response.statusText}`;
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        message = body.error.message || message;
        grpcStatus = body.error.status || '';
      } else if (text) {
        message = text.slice(0, 500);
      }
    } catch {
      if (text) message = text.slice(0, 500);
    }
  } catch {
    /* the body could not be read; keep the status line */
  }
  return new ApiError(response.status, grpcStatus, message);
}

async function send(method, path, { json, body, signal, headers = {} } = {}) {
  const init = { method, headers: authHeaders(headers), signal, credentials: 'same-origin' };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = 'application/json';
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'UNAVAILABLE', `the server could not be reached (${err.message})`);
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && credential() && unauthorizedHandler) unauthorizedHandler(error);
    throw error;
  }
  return response;
}

async function sendJson(method, path, options) {
  const response = await send(method, path, options);
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

export const api = {
  get: (path, options) => sendJson('GET', path, options),
  post: (path, json, options = {}) => sendJson('POST', path, { ...options, json: json ?? {} }),
  postForm: (path, form, options = {}) => sendJson('POST', path, { ...options, body: form }),
  del: (path, options) => sendJson('DELETE', path, options),
  text: async (path, options) => (await send('GET', path, options)).text(),
  blob: async (path, options) => (await send('GET', path, options)).blob(),
};

// Probe without a credential: 200 means authentication is off, 401 that it is on.
// Whether the server wants a credential: WhoAmI without one answers
// `{"authEnabled": ...}` (it is the one call the server takes unauthenticated), so the
// first visit logs no 401.
export async function authenticationRequired() {
  const response = await fetch('/v1/whoami', { method: 'GET', credentials: 'omit' });
  if (response.ok) {
    const me = await response.json();
    return Boolean(me.authEnabled);
  }
  throw await errorFrom(response);
}

// Multipart upload through XMLHttpRequest, the only browser API that reports upload
// progress. Resolves with the parsed JSON body; rejects with ApiError.
export function uploadForm(path, form, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    const key = credential();
    if (key) xhr.setRequestHeader('Authorization', `Bearer ${key}`);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body || {});
        return;
      }
      const message = body && body.error ? body.error.message : `${xhr.status} ${xhr.statusText}`;
      const error = new ApiError(xhr.status, body && body.error ? body.error.status : '', message);
      if (xhr.status === 401 && key && unauthorizedHandler) unauthorizedHandler(error);
      reject(error);
    });
    xhr.addEventListener('error', () =>
      reject(new ApiError(0, 'UNAVAILABLE', 'the upload failed: the server could not be reached')),
    );
    xhr.addEventListener('abort', () => reject(new DOMException('upload aborted', 'AbortError')));
    if (signal) signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}

// Server-sent events read with fetch (EventSource cannot send the Authorization
// header). Calls onEvent(parsed JSON) for each `data:` record until the signal aborts
// or the server closes the stream.
export async function readEventStream(topics, signal, onEvent, fromOffset = 0) {
  const params = topics.map((t) => `topics=${enc(t)}`);
  if (fromOffset > 0) params.push(`from_offset=${fromOffset}`);
  const query = params.join('&');
  const response = await send('GET', `/v1/events/stream${query ? `?${query}` : ''}`, {
    signal,
    headers: { Accept: 'text/event-stream' },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let data = [];
  let type = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      if (line === '') {
        if (data.length) {
          const text = data.join('\n');
          data = [];
          let parsed;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = { kind: 'unparsed', data: text };
          }
          if (type === 'error') {
            const message = parsed && parsed.error ? parsed.error.message || JSON.stringify(parsed.error) : text;
            throw new ApiError(0, parsed?.error?.status || 'UNKNOWN', `the event stream failed: ${message}`);
          }
          onEvent(parsed);
        }
        type = '';
      } else if (line.startsWith('event:')) {
        type = line.slice(6).trim();
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''));
      }
      // `id:`, `retry:` and comments (keep-alives) carry nothing we show.
    }
  }
}

// Original bytes of an ingested file, as an object URL the caller must revoke.
export async function mediaUrl(collection, sha256, signal) {
  const blob = await api.blob(`/v1/collections/${enc(collection)}/media/${enc(sha256)}`, { signal });
  return URL.createObjectURL(blob);
}
