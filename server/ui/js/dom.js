// Building the page without innerHTML: every server string goes in as a text node or
// an attribute value, so nothing the server (or a payload) says can become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';
let nextId = 0;

export function uid(prefix = 'id') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

function applyProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'on') for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (key === 'checked' || key === 'disabled' || key === 'multiple' || key === 'selected') el[key] = Boolean(value);
    else if (key === 'for') el.setAttribute('for', value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

export function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// A labelled control: returns [label, control] wrapped in a div.field.
export function field(labelText, control, hint) {
  if (!control.id) control.id = uid('f');
  const parts = [h('label', { for: control.id }, labelText), control];
  if (hint) {
    const hintEl = h('small', { class: 'hint', id: uid('hint') }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
    parts.push(hintEl);
  }
  return h('div', { class: 'field' }, parts);
}

export function button(text, onClick, props = {}) {
  return h('button', { type: 'button', ...props, on: { click: onClick, ...(props.on || {}) } }, text);
}

export function table(headers, rows, props = {}) {
  // Each cell carries its column's name, so narrow screens can show rows as cards.
  for (const row of rows) {
    [...row.children].forEach((cell, i) => {
      if (headers[i]) cell.dataset.label = headers[i];
    });
  }
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      props,
      h('thead', null, h('tr', null, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, rows),
    ),
  );
}

// Renders text in which the server marks matched words with **...**: the marked parts
// become <mark>, everything else stays text.
export function highlighted(text) {
  const parts = String(text || '').split('**');
  const out = [];
  parts.forEach((part, i) => {
    if (!part) return;
    out.push(i % 2 === 1 ? h('mark', null, part) : document.createTextNode(part));
  });
  return out;
}

// An error box with the server's message; a 403 reads "Not permitted".
export function errorBox(err, what = '') {
  if (err && err.status === 403) {
    return h(
      'div',
      { class: 'notice not-permitted', role: 'status' },
      h('strong', null, 'Not permitted'),
      what ? ` to ${what}: ` : ': ',
      err.message,
    );
  }
  return h(
    'div',
    { class: 'notice error', role: 'alert' },
    h('strong', null, 'Error'),
    what ? ` (${what}): ` : ': ',
    err ? err.message || String(err) : 'unknown error',
  );
}

export function toast(message, kind = 'info') {
  const host = document.getElementById('toasts');
  if (!host) return;
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  host.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

export function fmtBytes(n) {
  const v = Number(n) || 0;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = v;
  while (Math.abs(x) >= 1024 && i < units.length - 1) {
    x /= 1024;
    i += 1;
  }
  return `${i === 0 ? x : x.toFixed(1)} ${units[i]}`;
}

export function fmtNum(n, digits = 0) {
  const v = Number(n);
  if (!Number.isFinite(v)) return '–';
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtTime(unixMs) {
  const v = Number(unixMs);
  if (!v) return '–';
  const d = new Date(v);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtDuration(ms) {
  const v = Number(ms);
  if (!Number.isFinite(v) || v < 0) return '–';
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(1)} s`;
  if (v < 3600000) return `${Math.floor(v / 60000)} m ${Math.round((v % 60000) / 1000)} s`;
  return `${(v / 3600000).toFixed(1)} h`;
}

export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind || String(text).toLowerCase()}` }, text);
}

// A modal dialog on <dialog>: showModal() makes the rest of the page inert; Tab is
// kept inside; Escape closes (the native cancel event). Resolves with the value passed
// to close(), or null when dismissed.
export function openDialog({ title, body, actions, initialFocus }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId });
    let result = null;
    const close = (value) => {
      result = value;
      dialog.close();
    };
    const footer = h('div', { class: 'dialog-actions' });
    for (const action of actions(close)) footer.append(action);
    dialog.append(h('h2', { id: titleId }, title), body, footer);
    dialog.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const focusable = [...dialog.querySelectorAll('button, input, select, textarea, a[href]')].filter(
        (x) => !x.disabled && x.offsetParent !== null,
      );
      if (!focusable.length) return;
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    });
    const opener = document.activeElement;
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (opener && opener.focus) opener.focus();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    const target = initialFocus ? dialog.querySelector(initialFocus) : null;
    if (target) target.focus();
  });
}

// A confirmation that needs the name typed, for destructive actions.
export function confirmByName({ title, message, name, confirmText }) {
  const input = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', class: 'confirm-name' });
  const body = h('div', null, h('p', null, message), field(`Type ${name} to confirm`, input));
  return openDialog({
    title,
    body,
    initialFocus: '.confirm-name',
    actions: (close) => {
      const ok = button(confirmText, () => close(true), { class: 'danger', disabled: true });
      input.addEventListener('input', () => {
        ok.disabled = input.value !== name;
      });
      input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && input.value === name) close(true);
      });
      return [button('Cancel', () => close(false)), ok];
    },
  });
}

export function pageHeader(title, ...extra) {
  return h('div', { class: 'page-header' }, h('h1', { tabindex: '-1' }, title), h('div', { class: 'page-actions' }, extra));
}

export function section(title, ...children) {
  const id = uid('sec');
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), children);
}

export function jsonBlock(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}
