// Ingestion: files or a whole folder (picker or drag and drop) uploaded one file per
// request to `POST /v1/collections/C/ingest`, with a progress bar and per-file
// results. Which files of the batch finished is kept in localStorage (name, size and
// modification time, never content), so after a reload the user picks the same folder
// again and the finished files are skipped; the server skips identical content too.

import { api, enc, uploadForm } from '../api.js';
import {
  badge, button, clear, errorBox, field, fmtBytes, fmtNum, h, pageHeader, section,
} from '../dom.js';
import { canWrite, ensurePermissions } from '../session.js';

export const title = 'Ingest';

const BATCH_KEY = 'agentdb.ingest.batch';

function fileKey(entry) {
  return `${entry.path}|${entry.file.size}|${entry.file.lastModified}`;
}

function loadBatch() {
  try {
    const raw = localStorage.getItem(BATCH_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function saveBatch(batch) {
  if (batch) localStorage.setItem(BATCH_KEY, JSON.stringify(batch));
  else localStorage.removeItem(BATCH_KEY);
}

// Files from a drop, folders walked recursively (webkitGetAsEntry).
async function filesFromDrop(dataTransfer) {
  const out = [];
  const entries = [...dataTransfer.items].map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (!entries.some(Boolean)) return [...dataTransfer.files].map((file) => ({ file, path: file.name }));
  async function walk(entry, prefix) {
    if (!entry) return;
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, path: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const entry of entries) await walk(entry, '');
  return out;
}

export function render(main) {
  let entries = [];
  let controller = null;

  const collection = h('select', { id: 'ingest-collection' });
  const filesInput = h('input', { type: 'file', id: 'ingest-files', multiple: true });
  const folderInput = h('input', { type: 'file', id: 'ingest-folder', multiple: true, webkitdirectory: true });
  const drop = h(
    'div',
    { class: 'dropzone', id: 'ingest-drop' },
    h('p', null, 'Drop files or folders here, or choose them:'),
    h('div', { class: 'row' }, field('Files', filesInput), field('A folder', folderInput)),
  );
  const selection = h('div', { 'aria-live': 'polite', id: 'ingest-selection' });
  const resumeHost = h('div', { id: 'ingest-resume' });
  const start = button('Upload', () => upload(), { class: 'primary', id: 'ingest-start', disabled: true });
  const cancel = button('Cancel', () => controller && controller.abort(), { id: 'ingest-cancel', hidden: true });
  const progress = h('progress', { id: 'ingest-progress', max: '1', value: '0', 'aria-label': 'Upload progress' });
  const progressText = h('p', { class: 'muted', id: 'ingest-progress-text', 'aria-live': 'polite' });
  const failures = h('div', { id: 'ingest-failures' });
  const resultList = h('ol', { class: 'file-list', id: 'ingest-results' });
  const status = h('div');

  main.append(
    pageHeader('Ingest files'),
    status,
    resumeHost,
    h('div', { class: 'panel' }, field('Into collection', collection), drop, selection, h('div', { class: 'row' }, start, cancel)),
    section('Progress', progress, progressText, failures, h('details', { open: true }, h('summary', null, 'Files'), resultList)),
  );

  api.get('/v1/collections').then(
    async ({ collections = [] }) => {
      await ensurePermissions(collections.map((c) => c.name));
      const writable = collections.filter((c) => canWrite(c.name));
      for (const c of writable) collection.append(h('option', { value: c.name }, c.name));
      if (!writable.length) {
        status.append(h('div', { class: 'notice not-permitted', role: 'status' }, h('strong', null, 'Not permitted: '), 'there is no collection you may write to.'));
        drop.hidden = true;
      }
      showResume();
      updateSelection();
    },
    (err) => status.append(errorBox(err, 'list collections')),
  );

  function showResume() {
    clear(resumeHost);
    const batch = loadBatch();
    if (!batch) return;
    const done = Object.keys(batch.done || {}).length;
    if (done >= batch.total) {
      saveBatch(null);
      return;
    }
    if ([...collection.options].some((o) => o.value === batch.collection)) collection.value = batch.collection;
    resumeHost.append(
      h(
        'div',
        { class: 'notice info', role: 'status' },
        h('strong', null, 'Unfinished upload. '),
        `${fmtNum(done)} of ${fmtNum(batch.total)} files into ${batch.collection} finished before the page was left. `,
        'Choose the same folder or files again to continue: finished files are skipped. ',
        button('Forget it', () => {
          saveBatch(null);
          showResume();
          updateSelection();
        }, { class: 'small', id: 'ingest-forget' }),
      ),
    );
  }

  function pendingEntries() {
    const batch = loadBatch();
    if (!batch || batch.collection !== collection.value) return { todo: entries, skipped: 0 };
    const todo = entries.filter((e) => !batch.done[fileKey(e)]);
    return { todo, skipped: entries.length - todo.length };
  }

  function updateSelection() {
    clear(selection);
    if (!entries.length) {
      start.disabled = true;
      return;
    }
    const { todo, skipped } = pendingEntries();
    const bytes = todo.reduce((n, e) => n + e.file.size, 0);
    selection.append(
      h(
        'p',
        null,
        `${fmtNum(entries.length)} files chosen`,
        skipped ? `, ${fmtNum(skipped)} already uploaded in the unfinished batch (skipped)` : '',
        `: ${fmtNum(todo.length)} to upload, ${fmtBytes(bytes)}.`,
      ),
    );
    start.disabled = !todo.length || !collection.value;
  }

  const choose = (list) => {
    entries = list.filter((e) => e.file.size > 0 || e.file.name);
    updateSelection();
  };
  filesInput.addEventListener('change', () => choose([...filesInput.files].map((file) => ({ file, path: file.name }))));
  folderInput.addEventListener('change', () =>
    choose([...folderInput.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }))),
  );
  collection.addEventListener('change', updateSelection);
  for (const ev of ['dragenter', 'dragover']) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.classList.add('over');
    });
  }
  for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    try {
      choose(await filesFromDrop(e.dataTransfer));
    } catch (err) {
      status.append(errorBox(err, 'read the dropped files'));
    }
  });

  function addResult(path, status, detail) {
    resultList.append(
      h('li', { dataset: { status, path } }, badge(status), ' ', h('span', null, path), detail ? h('span', { class: 'sub' }, detail) : null),
    );
  }

  async function upload() {
    const target = collection.value;
    const { todo } = pendingEntries();
    if (!todo.length) return;
    let batch = loadBatch();
    const keys = entries.map(fileKey);
    if (!batch || batch.collection !== target) {
      batch = { collection: target, total: keys.length, done: {}, startedUnixMs: Date.now() };
    } else {
      batch.total = Math.max(batch.total, keys.length);
    }
    saveBatch(batch);
    clear(resumeHost);
    clear(resultList);
    clear(failures);
    controller = new AbortController();
    start.disabled = true;
    cancel.hidden = false;
    const totalBytes = todo.reduce((n, e) => n + e.file.size, 0) || 1;
    let doneBytes = 0;
    const counts = { ingested: 0, skipped: 0, failed: 0 };
    const failed = [];
    progress.max = totalBytes;
    progress.value = 0;
    for (let i = 0; i < todo.length; i += 1) {
      const entry = todo[i];
      progressText.textContent = `Uploading ${i + 1} of ${todo.length}: ${entry.path}`;
      const form = new FormData();
      form.append('file', entry.file, entry.path);
      let result;
      try {
        const r = await uploadForm(
          `/v1/collections/${enc(target)}/ingest`,
          form,
          (loaded) => {
            progress.value = doneBytes + Math.min(loaded, entry.file.size);
          },
          controller.signal,
        );
        result = (r.results || [])[0] || { status: 'failed', error: 'the server returned no result for this file' };
      } catch (err) {
        if (err.name === 'AbortError') {
          progressText.textContent = `Canceled after ${i} of ${todo.length} files. Choose the files again to continue.`;
          break;
        }
        result = { status: 'failed', error: err.message };
      }
      doneBytes += entry.file.size;
      progress.value = doneBytes;
      const st = result.status || 'failed';
      counts[st] = (counts[st] || 0) + 1;
      if (st === 'failed') {
        failed.push([entry.path, result.error]);
      } else {
        batch.done[fileKey(entry)] = st;
        saveBatch(batch);
      }
      addResult(entry.path, st, st === 'failed' ? result.error : `${result.items ?? 0} items, ${result.mediaType || ''}`);
    }
    if (!controller.signal.aborted) {
      progressText.textContent = `Done: ${counts.ingested} ingested, ${counts.skipped} skipped (same content already there), ${counts.failed} failed.`;
      progressText.dataset.done = 'true';
      if (!failed.length) saveBatch(null);
    }
    if (failed.length) {
      failures.append(
        h(
          'div',
          { class: 'notice error', role: 'alert', id: 'ingest-failed' },
          h('strong', null, `${failed.length} file${failed.length === 1 ? '' : 's'} failed`),
          h('ul', null, failed.map(([path, error]) => h('li', null, h('strong', null, path), `: ${error}`))),
          'Upload again to retry them; finished files are skipped.',
        ),
      );
    }
    controller = null;
    cancel.hidden = true;
    // The next pick starts a fresh selection; after failures the chosen files stay, so
    // Upload retries just those (the finished ones are remembered as done).
    filesInput.value = '';
    folderInput.value = '';
    if (!failed.length) entries = [];
    updateSelection();
  }

  return () => {
    if (controller) controller.abort();
  };
}
