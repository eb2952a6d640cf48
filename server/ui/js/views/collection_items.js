// Browsing one collection's items: pages in id order from Items/Scroll
// (`POST /v1/collections/C/items/scroll`), a filter box, payloads, and the original
// file's thumbnail for ingested images.

import { api, enc } from '../api.js';
import { button, clear, errorBox, field, fmtNum, h, jsonBlock, pageHeader, table } from '../dom.js';
import { MediaCache, mediaElement } from '../media.js';

function summary(payload) {
  if (!payload || typeof payload !== 'object') return '';
  if (typeof payload.text === 'string') return payload.text.slice(0, 160);
  if (typeof payload.ocr === 'string' && payload.ocr) return `reads "${payload.ocr.slice(0, 120)}"`;
  if (Array.isArray(payload.labels)) return `looks like: ${payload.labels.slice(0, 3).join(', ')}`;
  return '';
}

function timeRange(payload) {
  if (!payload) return '';
  if (payload.t_s !== undefined) return `at ${Number(payload.t_s).toFixed(1)} s`;
  if (payload.start_s !== undefined) return `${Number(payload.start_s).toFixed(1)}–${Number(payload.end_s).toFixed(1)} s`;
  return '';
}

export function renderItems(main, collection) {
  const cache = new MediaCache(collection);
  const filter = h('input', { type: 'search', id: 'items-filter', placeholder: 'modality = "image"', autocomplete: 'off' });
  const pageSize = h('select', { id: 'items-page-size' }, [20, 50, 100, 200].map((n) => h('option', { value: String(n), selected: n === 50 }, String(n))));
  const thumbs = h('input', { type: 'checkbox', id: 'items-thumbs', checked: true });
  const countEl = h('span', { class: 'muted', 'aria-live': 'polite' });
  const listHost = h('div', null, h('p', { class: 'loading' }, 'Loading items…'));
  const prev = button('Previous page', () => go(-1), { id: 'items-prev', disabled: true });
  const next = button('Next page', () => go(1), { id: 'items-next', disabled: true });
  const pageLabel = h('span', { class: 'muted' });
  // afters[i] is the `after` that starts page i.
  let afters = [''];
  let page = 0;
  let nextAfter = '';
  let loading = null;

  const form = h(
    'form',
    { class: 'panel', novalidate: true },
    h(
      'div',
      { class: 'row' },
      field('Filter', filter, 'Same syntax as search filters, e.g. source = "cat.jpg" or width > 400.'),
      h('div', { class: 'field narrow' }, h('label', { for: pageSize.id }, 'Per page'), pageSize),
      h('div', { class: 'field check' }, thumbs, h('label', { for: thumbs.id }, 'Thumbnails')),
      h('div', { class: 'field' }, h('button', { type: 'submit', class: 'primary' }, 'Apply')),
    ),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    restart();
  });
  pageSize.addEventListener('change', restart);
  thumbs.addEventListener('change', () => load());

  main.append(
    pageHeader(`Collection ${collection}`, h('a', { href: '#/collections' }, 'All collections'), h('a', { href: `#/search/${enc(collection)}` }, 'Search it')),
    form,
    h('div', { class: 'pager' }, prev, next, pageLabel, countEl),
    listHost,
  );

  function restart() {
    afters = [''];
    page = 0;
    load();
    count();
  }

  function go(delta) {
    if (delta > 0 && nextAfter) {
      afters[page + 1] = nextAfter;
      page += 1;
    } else if (delta < 0 && page > 0) {
      page -= 1;
    }
    load();
  }

  async function count() {
    countEl.textContent = '';
    try {
      const r = await api.post(`/v1/collections/${enc(collection)}/count`, { filter: filter.value.trim() });
      countEl.textContent = `${fmtNum(r.count)} matching item${Number(r.count) === 1 ? '' : 's'}`;
    } catch {
      /* the page itself shows the error */
    }
  }

  async function load() {
    if (loading) loading.abort();
    const controller = new AbortController();
    loading = controller;
    prev.disabled = true;
    next.disabled = true;
    try {
      const r = await api.post(
        `/v1/collections/${enc(collection)}/items/scroll`,
        { filter: filter.value.trim(), after: afters[page], limit: Number(pageSize.value), withPayload: true, withVectors: false },
        { signal: controller.signal },
      );
      if (controller.signal.aborted) return;
      const items = r.items || [];
      nextAfter = r.nextAfter ?? r.next_after ?? '';
      prev.disabled = page === 0;
      next.disabled = !nextAfter;
      pageLabel.textContent = `Page ${page + 1}${items.length ? `: ${items[0].id} … ${items[items.length - 1].id}` : ''}`;
      clear(listHost).append(itemsTable(items));
    } catch (err) {
      if (err.name === 'AbortError') return;
      prev.disabled = page === 0;
      clear(listHost).append(errorBox(err, 'read items'));
    }
  }

  function itemsTable(items) {
    if (!items.length) return h('p', { class: 'muted' }, page === 0 ? 'No items match.' : 'No more items.');
    const rows = items.map((item) => {
      let payload = item.payload ?? item.payload_json;
      if (typeof payload === 'string') {
        try {
          payload = JSON.parse(payload);
        } catch {
          /* keep the string */
        }
      }
      const p = payload && typeof payload === 'object' ? payload : {};
      const media = thumbs.checked && p.modality === 'image' ? mediaElement(cache, p, { alt: `${p.source || item.id}` }) : null;
      const vectors = Object.entries(item.vectors || {});
      return h(
        'tr',
        { dataset: { id: item.id } },
        h('td', { class: 'mono' }, item.id),
        h('td', null, p.source || '', p.modality ? h('span', { class: 'sub' }, [p.modality, timeRange(p)].filter(Boolean).join(' ')) : null),
        h('td', null, media, summary(p)),
        h(
          'td',
          null,
          h('details', null, h('summary', null, 'Payload'), jsonBlock(payload ?? null)),
          vectors.length ? h('span', { class: 'sub' }, vectors.map(([k, v]) => `${k}: ${(v.values || []).length}-d`).join(', ')) : null,
        ),
      );
    });
    return table(['Id', 'Source', 'Content', 'Payload'], rows, { id: 'items-table' });
  }

  restart();
  return () => {
    if (loading) loading.abort();
    cache.dispose();
  };
}
