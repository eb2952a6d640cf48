// Collections: the list with counts, spaces, encoders and index settings; create
// (admin) and drop (admin, confirmed by typing the name); `#/collections/NAME` browses
// a collection's items (collection_items.js).

import { api, enc } from '../api.js';
import {
  badge, button, clear, confirmByName, errorBox, field, fmtBytes, fmtNum, h, pageHeader, table, toast, uid,
} from '../dom.js';
import { canAdmin, ensurePermissions } from '../session.js';
import { renderItems } from './collection_items.js';

export const title = 'Collections';

const METRICS = ['METRIC_COSINE', 'METRIC_INNER_PRODUCT', 'METRIC_L2'];
const LANGUAGES = [
  'english', 'arabic', 'danish', 'dutch', 'finnish', 'french', 'german', 'greek', 'hungarian', 'italian',
  'norwegian', 'portuguese', 'romanian', 'russian', 'spanish', 'swedish', 'tamil', 'turkish',
];

export function render(main, args) {
  if (args[0]) return renderItems(main, args[0]);
  const listHost = h('div', { class: 'collections-list' }, h('p', { class: 'loading' }, 'Loading collections…'));
  const createHost = h('div');
  const actions = [];
  if (canAdmin()) {
    actions.push(
      button('New collection', () => {
        createHost.hidden = !createHost.hidden;
        if (!createHost.hidden) createHost.querySelector('input')?.focus();
      }, { class: 'primary', id: 'new-collection', 'aria-controls': 'create-collection' }),
    );
  }
  main.append(pageHeader('Collections', actions, button('Refresh', () => load())));
  if (canAdmin()) {
    createHost.append(createForm(() => load()));
    createHost.hidden = true;
    main.append(createHost);
  }
  main.append(listHost);

  async function load() {
    try {
      const { collections = [] } = await api.get('/v1/collections');
      await ensurePermissions(collections.map((c) => c.name));
      clear(listHost).append(collectionsTable(collections, load));
    } catch (err) {
      clear(listHost).append(errorBox(err, 'list collections'));
    }
  }
  load();
  return null;
}

function metricName(m) {
  return String(m || '').replace(/^METRIC_/, '').toLowerCase().replace('_', ' ') || 'default';
}

function spacesList(spaces) {
  return h(
    'ul',
    { class: 'spaces' },
    spaces.map((s) => {
      const spec = s.spec || {};
      return h(
        'li',
        null,
        h('strong', null, spec.name || '?'),
        ` ${spec.dim}-d ${metricName(spec.metric)}, index ${spec.index || 'default'}`,
        (s.indexKinds || []).length ? h('span', { class: 'sub' }, `built: ${s.indexKinds.join(', ')}`) : null,
        h('span', { class: 'sub' }, spec.encoder ? `encoder ${spec.encoder}` : 'no encoder (vectors from the client)'),
      );
    }),
  );
}

function collectionsTable(collections, reload) {
  if (!collections.length) {
    return h('p', { class: 'muted' }, canAdmin() ? 'No collections yet. Create one above.' : 'No collections you may read.');
  }
  const rows = collections.map((c) => {
    const actions = h(
      'div',
      { class: 'row' },
      h('a', { href: `#/collections/${enc(c.name)}` }, 'Browse'),
      h('a', { href: `#/search/${enc(c.name)}` }, 'Search'),
    );
    if (canAdmin(c.name)) {
      actions.append(
        button('Drop', () => drop(c.name, reload), {
          class: 'danger small',
          'aria-label': `Drop collection ${c.name}`,
          dataset: { drop: c.name },
        }),
      );
    }
    return h(
      'tr',
      { dataset: { collection: c.name } },
      h('td', null, h('a', { href: `#/collections/${enc(c.name)}`, class: 'coll-name' }, c.name)),
      h(
        'td',
        { class: 'num' },
        fmtNum(c.count),
        c.unindexed ? h('span', { class: 'sub' }, `${fmtNum(c.unindexed)} not indexed yet`) : null,
        c.deletedRows ? h('span', { class: 'sub' }, `${fmtNum(c.deletedRows)} deleted rows`) : null,
      ),
      h('td', null, spacesList(c.spaces || [])),
      h(
        'td',
        null,
        c.keywordLanguage ? c.keywordLanguage : badge('off', 'retired'),
        (c.keywordSearchable || []).length ? h('span', { class: 'sub' }, `meta: ${c.keywordSearchable.join(', ')}`) : null,
      ),
      h(
        'td',
        null,
        `${fmtNum(c.segments)} segments`,
        h('span', { class: 'sub' }, fmtBytes(c.diskBytes)),
        c.shards ? h('span', { class: 'sub' }, `${c.shards} shards × ${c.replicas} replicas`) : null,
      ),
      h('td', null, actions),
    );
  });
  return table(['Name', 'Items', 'Spaces and index', 'Keyword index', 'Storage', 'Actions'], rows, { id: 'collections-table' });
}

async function drop(name, reload) {
  const ok = await confirmByName({
    title: `Drop collection ${name}?`,
    message: 'Every item, vector and index of this collection is deleted. This cannot be undone.',
    name,
    confirmText: 'Drop collection',
  });
  if (!ok) return;
  try {
    await api.del(`/v1/collections/${enc(name)}`);
    toast(`Dropped ${name}`, 'ok');
  } catch (err) {
    toast(`Could not drop ${name}: ${err.message}`, 'error');
  }
  reload();
}

function spaceRow(encoders, onRemove) {
  const name = h('input', { type: 'text', value: 'text', 'aria-label': 'Space name', class: 'space-name' });
  const dim = h('input', { type: 'number', min: '1', value: '', 'aria-label': 'Dimension', class: 'space-dim' });
  const metric = h(
    'select',
    { 'aria-label': 'Metric', class: 'space-metric' },
    METRICS.map((m) => h('option', { value: m }, metricName(m))),
  );
  const index = h('input', { type: 'text', placeholder: 'HNSW32', 'aria-label': 'Index description', class: 'space-index' });
  const encoder = h(
    'select',
    { 'aria-label': 'Encoder', class: 'space-encoder' },
    h('option', { value: '' }, 'none (client vectors)'),
    encoders.map((m) => h('option', { value: m.name }, `${m.name} (${m.modality}, ${m.dim}-d)`)),
  );
  encoder.addEventListener('change', () => {
    dim.disabled = Boolean(encoder.value);
    if (encoder.value) dim.value = '';
  });
  const el = h(
    'div',
    { class: 'space-row' },
    field('Name', name),
    field('Dimension', dim),
    field('Metric', metric),
    field('Index', index),
    field('Encoder', encoder),
    button('Remove', () => onRemove(el), { class: 'small', 'aria-label': 'Remove this space' }),
  );
  el.read = () => {
    const spec = { name: name.value.trim(), metric: metric.value };
    if (index.value.trim()) spec.index = index.value.trim();
    if (encoder.value) spec.encoder = encoder.value;
    else spec.dim = Number(dim.value) || 0;
    return spec;
  };
  return el;
}

function createForm(onCreated) {
  const name = h('input', { type: 'text', id: 'new-collection-name', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9_-]+' });
  const groupName = uid('kind');
  const multimodal = h('input', { type: 'radio', name: groupName, value: 'multimodal', checked: true, id: 'kind-multimodal' });
  const custom = h('input', { type: 'radio', name: groupName, value: 'custom', id: 'kind-custom' });
  const spacesHost = h('div', { class: 'spaces-editor' });
  const addSpace = button('Add space', () => addRow(), { class: 'small' });
  const customBox = h('fieldset', { hidden: true }, h('legend', null, 'Vector spaces'), spacesHost, addSpace);
  const keywordOn = h('input', { type: 'checkbox', checked: true, id: uid('kw') });
  const language = h('select', null, LANGUAGES.map((l) => h('option', { value: l }, l)));
  const searchable = h('input', { type: 'text', placeholder: 'e.g. author, city' });
  const status = h('div', { 'aria-live': 'polite' });
  let encoders = [];

  function addRow() {
    const row = spaceRow(encoders, (el) => el.remove());
    spacesHost.append(row);
    row.querySelector('input').focus();
  }
  const syncKind = () => {
    customBox.hidden = !custom.checked;
    if (custom.checked && !spacesHost.children.length) addRow();
  };
  multimodal.addEventListener('change', syncKind);
  custom.addEventListener('change', syncKind);
  api.get('/v1/models').then(
    (r) => {
      encoders = (r.models || []).filter((m) => m.dim > 1 && ['text', 'image', 'audio'].includes(m.modality));
    },
    () => {
      encoders = [];
    },
  );

  const form = h(
    'form',
    { id: 'create-collection', class: 'panel', novalidate: true },
    h('h2', null, 'New collection'),
    field('Name', name, 'Letters, digits, _ and -.'),
    h(
      'fieldset',
      null,
      h('legend', null, 'Spaces'),
      h('div', { class: 'field check' }, multimodal, h('label', { for: multimodal.id }, 'Multimodal: the installed encoders\u2019 spaces (text, images, speech, video)')),
      h('div', { class: 'field check' }, custom, h('label', { for: custom.id }, 'Custom spaces')),
    ),
    customBox,
    h(
      'fieldset',
      null,
      h('legend', null, 'Keyword index'),
      h('div', { class: 'field check' }, keywordOn, h('label', { for: keywordOn.id }, 'BM25 keyword index (for keyword and hybrid search)')),
      h('div', { class: 'row' }, field('Language', language), field('Extra searchable payload fields', searchable)),
    ),
    status,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', id: 'create-collection-submit' }, 'Create collection')),
  );
  keywordOn.addEventListener('change', () => {
    language.disabled = !keywordOn.checked;
    searchable.disabled = !keywordOn.checked;
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(status);
    const body = { name: name.value.trim() };
    if (!body.name) {
      status.append(errorBox(new Error('a collection needs a name')));
      name.focus();
      return;
    }
    if (multimodal.checked) body.multimodal = true;
    else body.spaces = [...spacesHost.children].map((row) => row.read());
    body.keyword = keywordOn.checked
      ? {
          language: language.value,
          searchable: searchable.value.split(',').map((x) => x.trim()).filter(Boolean),
        }
      : { disabled: true };
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      await api.post('/v1/collections', body);
      toast(`Created ${body.name}`, 'ok');
      status.append(h('div', { class: 'notice ok', role: 'status' }, `Created collection ${body.name}.`));
      name.value = '';
      onCreated();
    } catch (err) {
      status.append(errorBox(err, 'create the collection'));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
