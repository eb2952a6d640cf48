// Workflow runs: the runs table (attempts and errors per step) and a live view of one
// run, polled until it finishes, whose step states the designer paints on the graph.

import { api, enc } from '../api.js';
import { badge, button, clear, errorBox, fmtDuration, fmtTime, h, table, toast } from '../dom.js';

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const POLL_MS = 400;

export function isFinished(run) {
  return TERMINAL.has(run.state);
}

function runDuration(run) {
  if (!run.startedUnixMs) return '–';
  const end = run.finishedUnixMs || Date.now();
  return fmtDuration(end - run.startedUnixMs);
}

function outputPreview(output) {
  if (output === null || output === undefined) return null;
  let text = JSON.stringify(output, null, 2);
  if (text.length > 2000) text = `${text.slice(0, 2000)}\n… (${text.length} characters)`;
  return h('details', null, h('summary', null, 'Output'), h('pre', { class: 'json' }, text));
}

export function stepsTable(run) {
  const rows = (run.steps || []).map((s) =>
    h(
      'tr',
      { dataset: { step: s.id, state: s.state } },
      h('td', null, h('strong', null, s.id), h('span', { class: 'sub' }, s.kind)),
      h('td', null, badge(s.state)),
      h('td', { class: 'num' }, String(s.attempts || 0)),
      h(
        'td',
        null,
        s.error ? h('div', { class: 'step-error' }, s.error) : null,
        (s.attemptErrors || []).length
          ? h('ol', { class: 'sub' }, s.attemptErrors.map((e, i) => h('li', null, `attempt ${i + 1}: ${e}`)))
          : null,
        s.nextAttemptUnixMs ? h('span', { class: 'sub' }, `next attempt ${fmtTime(s.nextAttemptUnixMs)}`) : null,
        outputPreview(s.output),
      ),
    ),
  );
  return table(['Step', 'State', 'Attempts', 'Errors and output'], rows, { class: 'run-steps' });
}

// Follows one run: calls onUpdate(run) on every poll until it is finished or stop()ped.
export function watchRun(runId, onUpdate, onError) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      const { run } = await api.get(`/v1/workflow-runs/${enc(runId)}`);
      if (stopped) return;
      onUpdate(run);
      if (isFinished(run)) return;
    } catch (err) {
      if (stopped) return;
      onError(err);
      if (err.status === 404 || err.status === 403) return;
    }
    timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

// The panel that shows the run being watched.
export function runPanel(run, { canCancel }) {
  const cancel =
    canCancel && !isFinished(run)
      ? button('Cancel run', async () => {
          try {
            await api.post(`/v1/workflow-runs/${enc(run.id)}/cancel`, {});
            toast(`Canceling ${run.id}`);
          } catch (err) {
            toast(`Could not cancel: ${err.message}`, 'error');
          }
        }, { class: 'danger small' })
      : null;
  return h(
    'div',
    { class: 'run-panel', id: 'run-panel', dataset: { run: run.id, state: run.state } },
    h(
      'p',
      null,
      h('strong', null, run.id),
      ' ',
      badge(run.state),
      ` ${run.workflow} v${run.version}, ${runDuration(run)}`,
      run.agent ? ` (agent ${run.agent})` : '',
      ' ',
      cancel,
    ),
    run.error ? h('div', { class: 'notice error', role: 'alert' }, run.error) : null,
    stepsTable(run),
  );
}

export function runsTable(runs, onShow) {
  if (!runs.length) return h('p', { class: 'muted' }, 'No runs yet.');
  const rows = runs.map((run) => {
    const steps = run.steps || [];
    const failed = steps.filter((s) => s.state === 'failed');
    const attempts = steps.reduce((n, s) => n + (s.attempts || 0), 0);
    return h(
      'tr',
      { dataset: { run: run.id, state: run.state } },
      h('td', { class: 'mono' }, run.id, h('span', { class: 'sub' }, `${run.workflow} v${run.version}`)),
      h('td', null, badge(run.state)),
      h('td', null, fmtTime(run.createdUnixMs), h('span', { class: 'sub' }, runDuration(run))),
      h('td', { class: 'num' }, `${steps.filter((s) => s.state === 'succeeded').length}/${steps.length}`, h('span', { class: 'sub' }, `${attempts} attempts`)),
      h('td', null, run.error || (failed.length ? failed.map((s) => `${s.id}: ${s.error}`).join('; ') : '')),
      h('td', null, button('Show', () => onShow(run), { class: 'small', 'aria-label': `Show run ${run.id}` })),
    );
  });
  return table(['Run', 'State', 'Created', 'Steps', 'Error', ''], rows, { id: 'runs-table' });
}

export async function loadRuns(host, workflow, onShow) {
  try {
    const q = workflow ? `?workflow=${enc(workflow)}&limit=20` : '?limit=30';
    const { runs = [] } = await api.get(`/v1/workflow-runs${q}`);
    clear(host).append(runsTable(runs, onShow));
  } catch (err) {
    clear(host).append(errorBox(err, 'list runs'));
  }
}
