// Search playground: a text query and/or a dropped image, recording or video clip,
// filter, retrieval mode and top-k; result cards with the original media (thumbnail,
// keyframe, the matched audio passage), snippets with matched words marked, and each
// result's explain lists.

import { api, enc } from '../api.js';
import {
  badge, button, clear, errorBox, field, fmtNum, h, highlighted, pageHeader, table,
} from '../dom.js';
import { MediaCache, mediaElement } from '../media.js';

export const title = 'Search';

const MODES = [
  ['RETRIEVAL_DEFAULT', 'Automatic (hybrid for text when there is a keyword index)'],
  ['RETRIEVAL_DENSE', 'Dense (vectors)'],
  ['RETRIEVAL_KEYWORD', 'Keyword (BM25)'],
  ['RETRIEVAL_HYBRID', 'Hybrid (both, fused)'],
];

function queryPartFor(file) {
  const type = file.type || '';
  if (type.startsWith('image/')) return 'image';
  if (type.startsWith('audio/')) return 'audio';
  if (type.startsWith('video/')) return 'video';
  const ext = (file.name.split('.').pop() || '').toLowerCase();
  if (['png', 'jpg', 'jpeg', 'gif', 'webp', 'bmp', 'tif', 'tiff'].includes(ext)) return 'image';
  if (['wav', 'mp3', 'flac', 'ogg', 'm4a', 'opus'].includes(ext)) return 'audio';
  if (['mp4', 'mkv', 'webm', 'mov', 'avi'].includes(ext)) return 'video';
  return 'image';
}

export function render(main, args) {
  let cache = null;
  let chosenFile = null;
  let inflight = null;

  const collection = h('select', { id: 'search-collection', required: true });
  const text = h('input', { type: 'search', id: 'search-text', placeholder: 'a cat on a sofa', autocomplete: 'off' });
  const fileInput = h('input', { type: 'file', id: 'search-file', accept: 'image/*,audio/*,video/*' });
  const chosen = h('div', { class: 'chosen', 'aria-live': 'polite' });
  const clearFile = button('Remove file', () => setFile(null), { class: 'small', hidden: true, id: 'search-clear-file' });
  const drop = h(
    'div',
    { class: 'dropzone', id: 'search-drop' },
    h('p', null, 'Drop an image, recording or video clip here to search by it, or choose one.'),
    field('Query file', fileInput),
    chosen,
    clearFile,
  );
  const filter = h('input', { type: 'text', id: 'search-filter', placeholder: 'modality = "image"', autocomplete: 'off' });
  const mode = h('select', { id: 'search-mode' }, MODES.map(([v, label]) => h('option', { value: v }, label)));
  const topK = h('input', { type: 'number', id: 'search-topk', min: '1', max: '1000', value: '10' });
  const keywordQuery = h('input', { type: 'text', id: 'search-keyword', placeholder: 'ocr:"harbour street" -draft', autocomplete: 'off' });
  const explain = h('input', { type: 'checkbox', id: 'search-explain', checked: true });
  const status = h('div', { 'aria-live': 'polite', class: 'search-status' });
  const results = h('div', { class: 'results', id: 'search-results', 'aria-label': 'Search results' });

  let previewUrl = null;
  function setFile(file) {
    chosenFile = file;
    chosen.textContent = file ? `${queryPartFor(file)} query: ${file.name} (${fmtNum(file.size / 1024, 0)} KiB)` : '';
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    if (file && queryPartFor(file) === 'image') {
      previewUrl = URL.createObjectURL(file);
      chosen.append(h('img', { src: previewUrl, alt: `query image ${file.name}`, class: 'query-preview' }));
    }
    clearFile.hidden = !file;
    if (!file) fileInput.value = '';
  }
  fileInput.addEventListener('change', () => setFile(fileInput.files[0] || null));
  for (const ev of ['dragenter', 'dragover']) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.classList.add('over');
    });
  }
  for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    const file = e.dataTransfer.files[0];
    if (file) setFile(file);
  });

  const form = h(
    'form',
    { class: 'panel search-form', novalidate: true, id: 'search-form' },
    h('div', { class: 'row' }, field('Collection', collection), field('Text query', text)),
    drop,
    h(
      'div',
      { class: 'row' },
      field('Filter', filter),
      field('Mode', mode),
      h('div', { class: 'field narrow' }, h('label', { for: topK.id }, 'Top k'), topK),
    ),
    h(
      'details',
      null,
      h('summary', null, 'Keyword query syntax'),
      field('Keyword query (optional; defaults to the text)', keywordQuery, 'word, "a phrase", field:word, +required, -excluded, word^2'),
    ),
    h(
      'div',
      { class: 'row' },
      h('div', { class: 'field check' }, explain, h('label', { for: explain.id }, 'Explain each result')),
      h('div', { class: 'field' }, h('button', { type: 'submit', class: 'primary', id: 'search-submit' }, 'Search')),
    ),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    run();
  });

  main.append(pageHeader('Search'), form, status, results);

  api.get('/v1/collections').then(
    ({ collections = [] }) => {
      for (const c of collections) collection.append(h('option', { value: c.name }, c.name));
      if (args[0] && collections.some((c) => c.name === args[0])) collection.value = args[0];
      if (!collections.length) status.replaceChildren(h('p', { class: 'muted' }, 'No collections to search.'));
    },
    (err) => status.replaceChildren(errorBox(err, 'list collections')),
  );
  collection.addEventListener('change', () => {
    if (collection.value) history.replaceState(null, '', `#/search/${enc(collection.value)}`);
  });

  async function run() {
    clear(status);
    if (!collection.value) {
      status.append(errorBox(new Error('pick a collection')));
      return;
    }
    if (!chosenFile && !text.value.trim() && !keywordQuery.value.trim()) {
      status.append(errorBox(new Error('type a query or choose a file')));
      text.focus();
      return;
    }
    if (inflight) inflight.abort();
    inflight = new AbortController();
    const request = {
      topK: Number(topK.value) || 10,
      mode: mode.value,
      explain: explain.checked,
      withPayload: true,
    };
    if (filter.value.trim()) request.filter = filter.value.trim();
    if (text.value.trim()) request.text = text.value.trim();
    if (keywordQuery.value.trim()) request.keywordQuery = keywordQuery.value.trim();
    const path = `/v1/collections/${enc(collection.value)}/search`;
    const started = performance.now();
    status.append(h('p', { class: 'loading' }, 'Searching…'));
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      let r;
      if (chosenFile) {
        const body = new FormData();
        body.append(queryPartFor(chosenFile), chosenFile, chosenFile.name);
        body.append('request', JSON.stringify(request));
        r = await api.postForm(path, body, { signal: inflight.signal });
      } else {
        r = await api.post(path, request, { signal: inflight.signal });
      }
      const ms = performance.now() - started;
      const hits = r.hits || [];
      clear(status).append(h('p', { class: 'muted', id: 'search-summary' }, `${hits.length} results in ${fmtNum(ms, 0)} ms`));
      showHits(hits, collection.value);
    } catch (err) {
      if (err.name === 'AbortError') return;
      clear(status).append(errorBox(err, 'search'));
      clear(results);
    } finally {
      submit.disabled = false;
    }
  }

  function showHits(hits, coll) {
    if (cache) cache.dispose();
    cache = new MediaCache(coll);
    clear(results);
    if (!hits.length) {
      results.append(h('p', { class: 'muted' }, 'Nothing matched.'));
      return;
    }
    hits.forEach((hit, i) => results.append(resultCard(hit, i + 1, cache)));
  }

  return () => {
    if (inflight) inflight.abort();
    if (cache) cache.dispose();
    if (previewUrl) URL.revokeObjectURL(previewUrl);
  };
}

function excerpt(payload) {
  if (!payload) return '';
  if (typeof payload.text === 'string' && payload.text) return payload.text;
  if (typeof payload.ocr === 'string' && payload.ocr) return payload.ocr;
  return '';
}

function resultCard(hit, rank, cache) {
  const payload = hit.payload && typeof hit.payload === 'object' ? hit.payload : {};
  const modality = hit.modality || payload.modality || '';
  const keyword = (hit.explain || []).find((l) => l.list === 'keyword' && l.snippet);
  const body = [];
  const media = mediaElement(cache, payload, { alt: `${hit.source || hit.id} (result ${rank})` });
  if (media) body.push(media);
  if (keyword) {
    body.push(h('p', { class: 'snippet' }, h('span', { class: 'muted' }, 'matched: '), highlighted(keyword.snippet)));
  } else {
    const t = excerpt(payload);
    if (t) {
      const label = modality === 'speech' ? 'transcript: ' : payload.ocr && !payload.text ? 'reads: ' : '';
      body.push(h('p', { class: 'snippet' }, label ? h('span', { class: 'muted' }, label) : null, t.length > 300 ? `${t.slice(0, 300)}…` : t));
    }
  }
  if (payload.ocr && keyword && !/ocr/.test((keyword.matched || []).join(' '))) {
    body.push(h('p', { class: 'snippet' }, h('span', { class: 'muted' }, 'reads: '), payload.ocr.slice(0, 200)));
  }
  return h(
    'article',
    { class: 'result-card', dataset: { id: hit.id, source: hit.source || '', rank: String(rank), sha256: payload.content_sha256 || '' } },
    h(
      'header',
      null,
      h('span', { class: 'rank' }, `#${rank}`),
      h('span', { class: 'source' }, hit.source || hit.id),
      modality ? badge(modality, 'modality') : null,
      h('span', { class: 'score', title: 'fused score' }, Number(hit.score).toFixed(4)),
    ),
    hit.part ? h('div', { class: 'part' }, hit.part) : null,
    body,
    (hit.explain || []).length ? explainPanel(hit.explain) : null,
  );
}

function explainPanel(lists) {
  const rows = lists.map((l) =>
    h(
      'tr',
      null,
      h('td', null, l.list),
      h('td', { class: 'num' }, String(l.rank)),
      h('td', { class: 'num' }, Number(l.score).toFixed(4)),
      h('td', { class: 'num' }, Number(l.contribution).toFixed(4)),
      h(
        'td',
        null,
        l.list === 'keyword' ? `${Math.round((Number(l.coverage) || 0) * 100)} % of the query` : '',
        (l.matched || []).length ? h('span', { class: 'sub' }, l.matched.join('; ')) : null,
      ),
    ),
  );
  return h(
    'details',
    { class: 'explain' },
    h('summary', null, `Explain: ${lists.length} list${lists.length === 1 ? '' : 's'}`),
    table(['List', 'Rank', 'Score', 'Adds', 'Matched'], rows),
  );
}
