// Workflows: the stored definitions and recent runs; `#/workflows/NAME` opens one in
// the designer, `#/workflows/new` starts a new one (workflow_designer.js).

import { api, enc } from '../api.js';
import { button, clear, confirmByName, errorBox, fmtTime, h, pageHeader, section, table, toast } from '../dom.js';
import { canAdmin, canWriteSomewhere } from '../session.js';
import { renderDesigner } from './workflow_designer.js';
import { isFinished, loadRuns, runPanel, watchRun } from './workflow_runs.js';

export const title = 'Workflows';

export function render(main, args) {
  if (args[0] === 'new') return renderDesigner(main, '');
  if (args[0]) return renderDesigner(main, args[0]);

  const listHost = h('div', null, h('p', { class: 'loading' }, 'Loading workflows…'));
  const runsHost = h('div', null, h('p', { class: 'loading' }, 'Loading runs…'));
  const runHost = h('div', { 'aria-live': 'polite' });
  let stopWatch = null;
  main.append(
    pageHeader('Workflows', canAdmin() ? h('a', { href: '#/workflows/new', class: 'button-link', id: 'new-workflow' }, 'New workflow') : null),
    section('Definitions', listHost),
    section('Recent runs', runHost, runsHost),
  );

  const showRun = (run) => {
    if (stopWatch) stopWatch();
    stopWatch = null;
    clear(runHost).append(runPanel(run, { canCancel: canWriteSomewhere() }));
    if (!isFinished(run)) {
      stopWatch = watchRun(
        run.id,
        (r) => clear(runHost).append(runPanel(r, { canCancel: canWriteSomewhere() })),
        (err) => clear(runHost).append(errorBox(err, 'follow the run')),
      );
    }
    runHost.querySelector('strong')?.scrollIntoView({ block: 'nearest' });
  };

  async function load() {
    try {
      const { workflows = [] } = await api.get('/v1/workflows');
      clear(listHost).append(workflowsTable(workflows, load));
    } catch (err) {
      clear(listHost).append(errorBox(err, 'list workflows'));
    }
    loadRuns(runsHost, '', showRun);
  }
  load();
  return () => {
    if (stopWatch) stopWatch();
  };
}

function workflowsTable(workflows, reload) {
  if (!workflows.length) {
    return h('p', { class: 'muted' }, canAdmin() ? 'No workflows yet: start one with "New workflow".' : 'No workflows you may see.');
  }
  const rows = workflows.map((w) => {
    const actions = h('div', { class: 'row' }, h('a', { href: `#/workflows/${enc(w.name)}` }, canAdmin() ? 'Open in designer' : 'View'));
    if (canAdmin()) {
      actions.append(
        button('Delete', async () => {
          const ok = await confirmByName({
            title: `Delete workflow ${w.name}?`,
            message: 'Every version of the definition is deleted. Its past runs stay listed.',
            name: w.name,
            confirmText: 'Delete workflow',
          });
          if (!ok) return;
          try {
            await api.del(`/v1/workflows/${enc(w.name)}`);
            toast(`Deleted ${w.name}`, 'ok');
          } catch (err) {
            toast(`Could not delete ${w.name}: ${err.message}`, 'error');
          }
          reload();
        }, { class: 'danger small', 'aria-label': `Delete workflow ${w.name}` }),
      );
    }
    return h(
      'tr',
      { dataset: { workflow: w.name } },
      h('td', null, h('strong', null, w.name), w.description ? h('span', { class: 'sub' }, w.description) : null),
      h('td', { class: 'num' }, `v${w.version}`, h('span', { class: 'sub' }, `${w.versions} versions`)),
      h('td', null, (w.steps || []).join(' → ')),
      h('td', null, (w.triggers || []).join(', ') || 'by hand'),
      h('td', null, fmtTime(w.appliedUnixMs), w.appliedBy ? h('span', { class: 'sub' }, w.appliedBy) : null),
      h('td', null, actions),
    );
  });
  return table(['Workflow', 'Version', 'Steps', 'Triggers', 'Applied', ''], rows, { id: 'workflows-table' });
}
