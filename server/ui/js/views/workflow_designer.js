// The visual workflow designer: the definition's DAG (dag.js) and its YAML side by side,
// kept in sync both ways; a step editor (kind, parameters, "depends on", policy);
// validation problems shown on their steps; save (apply), run, and the run's step
// states painted on the graph while it is polled.

import { api, enc } from '../api.js';
import { button, clear, errorBox, field, h, pageHeader, section, toast, uid } from '../dom.js';
import { renderDag } from '../dag.js';
import { load as loadYaml, dump as dumpYaml } from '../../vendor/js-yaml.mjs';
import { canAdmin, canWriteSomewhere } from '../session.js';
import {
  KIND_NAMES, PARAM_TYPES, STEP_KINDS, addNeed, defaultParams, dependsOn, needsOf, newStep, parseYaml, removeNeed,
  removeStep, renameStep, stepKind, stepsInServerError, toYaml, validate,
} from '../workflow_model.js';
import { isFinished, loadRuns, runPanel, watchRun } from './workflow_runs.js';

const NEW_TEMPLATE = `name: my-workflow
description: a workflow built in the console
steps:
  - id: wait
    sleep: 200ms
  - id: embed
    needs: [wait]
    embed: { text: "hello from the console" }
  - id: report
    needs: [embed]
    notify: { message: "embedded into {{ steps.embed.output.dim }} dimensions" }
`;

export function renderDesigner(main, name) {
  const isNew = !name;
  let doc = { steps: [] };
  let selected = null;
  let connectFrom = null;
  let serverErrors = { general: [], steps: new Map() };
  let runStates = null;
  let stopWatch = null;
  let savedName = name || '';

  const graphHost = h('div', { class: 'dag-wrap', id: 'dag' });
  const generalErrors = h('div', { id: 'workflow-errors', 'aria-live': 'polite' });
  const hint = h('p', { class: 'connect-hint muted', 'aria-live': 'polite', id: 'connect-hint' });
  const editorHost = h('div', { id: 'step-editor' });
  const yamlArea = h('textarea', { id: 'workflow-yaml', class: 'yaml-editor', spellcheck: 'false', rows: '18', readonly: !canAdmin() });
  const yamlStatus = h('div', { 'aria-live': 'polite', id: 'yaml-status' });
  const kindSelect = h('select', { id: 'add-step-kind' }, KIND_NAMES.map((k) => h('option', { value: k }, k)));
  const addBtn = button('Add step', () => {
    const step = newStep(doc, kindSelect.value);
    doc.steps.push(step);
    selected = step.id;
    commit({ editor: true });
    editorHost.querySelector('input')?.focus();
  }, { id: 'add-step' });
  const inputsArea = h('textarea', { id: 'run-inputs', rows: '3', spellcheck: 'false', placeholder: '{"query": "organ pipes"}' });
  const saveBtn = button('Save (apply)', () => save(), { class: 'primary', id: 'workflow-save' });
  const runBtn = button('Run', () => run(), { id: 'workflow-run' });
  const runHost = h('div', { id: 'run-host', 'aria-live': 'polite' });
  const runsHost = h('div', { id: 'workflow-runs' });

  const admin = canAdmin();
  const writer = canWriteSomewhere();
  main.append(
    pageHeader(isNew ? 'New workflow' : `Workflow ${name}`, h('a', { href: '#/workflows' }, 'All workflows')),
    section(
      'Graph',
      admin ? h('div', { class: 'row dag-toolbar' }, field('New step kind', kindSelect), h('div', { class: 'field narrow' }, addBtn)) : null,
      hint,
      graphHost,
      generalErrors,
      h(
        'p',
        { class: 'muted hint' },
        admin
          ? 'Select a step to edit it. To connect, press a step\u2019s round output handle, then the step that waits for it; press an arrow to remove it.'
          : 'Select a step to see it. Changing definitions needs the admin role.',
      ),
    ),
    h('div', { class: 'designer' }, section('Step', editorHost), section('YAML', field('Definition (YAML)', yamlArea), yamlStatus)),
    section(
      'Save and run',
      admin ? null : h('p', { class: 'muted' }, 'Saving definitions needs the admin role.'),
      writer ? field('Run inputs (JSON, optional)', inputsArea) : h('p', { class: 'muted' }, 'Running workflows needs the write role.'),
      h('div', { class: 'row' }, admin ? saveBtn : null, writer ? runBtn : null),
      runHost,
    ),
    section('Runs', runsHost),
  );

  function errorsNow() {
    const client = validate(doc);
    const steps = new Map(client.steps);
    for (const [id, msgs] of serverErrors.steps) steps.set(id, [...(steps.get(id) || []), ...msgs]);
    return { general: [...client.general, ...serverErrors.general], steps };
  }

  function drawGraph() {
    const errors = errorsNow();
    renderDag(graphHost, doc.steps, {
      errors: errors.steps,
      states: runStates,
      selected,
      connectFrom,
      editable: admin,
      onSelect: (id) => {
        selected = id;
        connectFrom = null;
        drawGraph();
        renderEditor();
      },
      onHandle: (id) => {
        connectFrom = connectFrom === id ? null : id;
        showHint();
        drawGraph();
        if (connectFrom) graphHost.querySelector(`[data-step]:not([data-step="${CSS.escape(id)}"])`)?.focus();
      },
      onConnect: (from, to) => {
        const msg = addNeed(doc, from, to);
        connectFrom = null;
        if (msg) toast(msg, 'error');
        commit({ editor: true });
        showHint();
      },
      onEdge: (from, to) => {
        if (!admin) return;
        removeNeed(doc, from, to);
        toast(`${to} no longer waits for ${from}`);
        commit({ editor: true });
      },
    });
    clear(generalErrors);
    const unplaced = [...errors.steps.entries()].filter(([id]) => !doc.steps.some((s) => s && String(s.id) === id));
    const lines = [...errors.general, ...unplaced.flatMap(([id, msgs]) => msgs.map((m) => `${id}: ${m}`))];
    if (lines.length) {
      generalErrors.append(h('div', { class: 'notice error', role: 'alert' }, h('strong', null, 'Problems'), h('ul', null, lines.map((l) => h('li', null, l)))));
    }
    const count = [...errors.steps.values()].reduce((n, m) => n + m.length, 0) + errors.general.length;
    saveBtn.dataset.problems = String(count);
  }

  function showHint() {
    hint.textContent = connectFrom
      ? `Connecting from ${connectFrom}: choose the step that waits for it (Escape cancels).`
      : '';
  }

  // After a change made in the graph or the editor: regenerate the YAML and redraw.
  function commit({ editor = false } = {}) {
    serverErrors = { general: [], steps: new Map() };
    runStates = null;
    yamlArea.value = toYaml(doc);
    clear(yamlStatus);
    drawGraph();
    if (editor) renderEditor();
    else refreshEditorErrors();
  }

  // Escape anywhere in the graph cancels a connection being made.
  graphHost.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && connectFrom) {
      const from = connectFrom;
      connectFrom = null;
      showHint();
      drawGraph();
      graphHost.querySelector(`[data-handle="${CSS.escape(from)}"]`)?.focus();
    }
  });

  let yamlTimer = null;
  yamlArea.addEventListener('input', () => {
    clearTimeout(yamlTimer);
    yamlTimer = setTimeout(fromYaml, 250);
  });
  function fromYaml() {
    clear(yamlStatus);
    try {
      ({ doc } = parseYaml(yamlArea.value));
    } catch (err) {
      yamlStatus.append(errorBox(new Error(`YAML: ${err.message.split('\n')[0]}`)));
      graphHost.classList.add('stale');
      return;
    }
    graphHost.classList.remove('stale');
    serverErrors = { general: [], steps: new Map() };
    runStates = null;
    if (selected && !doc.steps.some((s) => s && s.id === selected)) selected = null;
    drawGraph();
    renderEditor();
  }

  function refreshEditorErrors() {
    const host = editorHost.querySelector('.step-errors-host');
    if (!host || !selected) return;
    clear(host);
    const msgs = errorsNow().steps.get(selected) || [];
    if (msgs.length) host.append(h('ul', { class: 'step-errors', role: 'alert' }, msgs.map((m) => h('li', null, m))));
  }

  function renderEditor() {
    clear(editorHost);
    const step = doc.steps.find((s) => s && s.id === selected);
    if (!step) {
      editorHost.append(h('p', { class: 'muted' }, doc.steps.length ? 'Select a step in the graph.' : 'Add a step to begin.'));
      return;
    }
    const kind = stepKind(step);
    if (!admin) {
      editorHost.append(
        h('p', null, h('strong', null, step.id), ` (${kind})`, needsOf(step).length ? `, after ${needsOf(step).join(', ')}` : ''),
        h('div', { class: 'step-errors-host' }),
        h('pre', { class: 'json', id: 'step-yaml' }, toYaml({ steps: [step] }).replace(/^steps:\n/, '')),
      );
      refreshEditorErrors();
      return;
    }
    const idInput = h('input', { type: 'text', value: step.id, id: 'step-id', autocomplete: 'off', spellcheck: 'false' });
    idInput.addEventListener('change', () => {
      const next = idInput.value.trim();
      if (!next || next === step.id) return;
      if (doc.steps.some((s) => s.id === next)) {
        toast(`there is already a step '${next}'`, 'error');
        idInput.value = step.id;
        return;
      }
      renameStep(doc, step.id, next);
      selected = next;
      commit({ editor: true });
      editorHost.querySelector('#step-id')?.focus();
    });
    const kindSel = h('select', { id: 'step-kind' }, KIND_NAMES.map((k) => h('option', { value: k, selected: k === kind }, k)));
    kindSel.addEventListener('change', () => {
      for (const k of KIND_NAMES) delete step[k];
      step[kindSel.value] = defaultParams(kindSel.value);
      commit({ editor: true });
      editorHost.querySelector('#step-kind')?.focus();
    });
    editorHost.append(
      h('div', { class: 'row' }, field('Step id', idInput), field('Kind', kindSel)),
      h('div', { class: 'step-errors-host' }),
      paramsEditor(step, kind),
      needsEditor(step),
      policyEditor(step),
      h('div', { class: 'row' }, button('Remove step', () => {
        removeStep(doc, step.id);
        selected = null;
        commit({ editor: true });
        graphHost.querySelector('[data-step]')?.focus();
      }, { class: 'danger small', id: 'remove-step' })),
    );
    refreshEditorErrors();
  }

  function paramsEditor(step, kind) {
    const box = h('fieldset', { class: 'params' }, h('legend', null, 'Parameters'));
    if (kind === 'sleep') {
      const dur = h('input', { type: 'text', value: String(step.sleep ?? ''), id: 'param-sleep' });
      dur.addEventListener('input', () => {
        step.sleep = dur.value.trim();
        commit();
      });
      box.append(field('Duration', dur, '250ms, 5s, 2m, 1h'));
      return box;
    }
    const spec = STEP_KINDS[kind];
    if (!spec) {
      box.append(h('p', { class: 'muted' }, 'Edit this step in the YAML: it does not have exactly one action.'));
      return box;
    }
    if (!step[kind] || typeof step[kind] !== 'object') step[kind] = {};
    const params = step[kind];
    for (const name of [...spec.required, ...spec.optional]) {
      const type = PARAM_TYPES[name] || 'text';
      const current = params[name];
      const label = `${name}${spec.required.includes(name) ? ' (required)' : ''}`;
      let control;
      if (type === 'yaml') {
        control = h('textarea', { rows: '2', id: `param-${name}`, spellcheck: 'false' });
        control.value = current === undefined ? '' : dumpYaml(current, { flowLevel: 0 }).trim();
      } else {
        control = h('input', { type: 'text', id: `param-${name}`, autocomplete: 'off', spellcheck: 'false', value: current === undefined ? '' : String(current) });
      }
      control.addEventListener('input', () => {
        const raw = control.value;
        control.removeAttribute('aria-invalid');
        if (raw.trim() === '' && !spec.required.includes(name)) delete params[name];
        else if (type === 'int' || type === 'number') params[name] = /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw.trim()) : raw;
        else if (type === 'yaml') {
          try {
            params[name] = loadYaml(raw);
          } catch {
            control.setAttribute('aria-invalid', 'true');
            return;
          }
        } else params[name] = raw;
        commit();
      });
      box.append(field(label, control, type === 'yaml' ? 'YAML or JSON' : name === 'items' ? 'e.g. {{ steps.find.output.hits }}' : ''));
    }
    return box;
  }

  function needsEditor(step) {
    const others = doc.steps.filter((s) => s && s.id !== step.id);
    const box = h('fieldset', { class: 'needs' }, h('legend', null, 'Depends on'));
    if (!others.length) {
      box.append(h('p', { class: 'muted' }, 'No other steps.'));
      return box;
    }
    const list = h('div', { class: 'needs-list' });
    const needs = needsOf(step);
    for (const other of others) {
      const id = uid('need');
      const wouldCycle = !needs.includes(other.id) && dependsOn(doc, other.id, step.id);
      const box2 = h('input', { type: 'checkbox', id, checked: needs.includes(other.id), disabled: wouldCycle, dataset: { need: other.id } });
      box2.addEventListener('change', () => {
        if (box2.checked) {
          const msg = addNeed(doc, other.id, step.id);
          if (msg) toast(msg, 'error');
        } else {
          removeNeed(doc, other.id, step.id);
        }
        commit({ editor: true });
        editorHost.querySelector(`input[data-need="${CSS.escape(other.id)}"]`)?.focus();
      });
      list.append(
        h('div', { class: 'field check' }, box2, h('label', { for: id, title: wouldCycle ? `${other.id} already depends on ${step.id}` : '' }, other.id, wouldCycle ? ' (would be a cycle)' : '')),
      );
    }
    box.append(list);
    return box;
  }

  function policyEditor(step) {
    const timeout = h('input', { type: 'text', id: 'step-timeout', value: step.timeout ?? '', placeholder: '5m' });
    const attempts = h('input', { type: 'number', id: 'step-attempts', min: '1', max: '20', value: step.retry?.max_attempts ?? '' , placeholder: '1' });
    const backoff = h('input', { type: 'text', id: 'step-backoff', value: step.retry?.backoff ?? '', placeholder: '1s' });
    const onFailure = h(
      'select',
      { id: 'step-on-failure' },
      h('option', { value: 'fail', selected: step.on_failure !== 'continue' }, 'fail the run'),
      h('option', { value: 'continue', selected: step.on_failure === 'continue' }, 'continue (dependents see the error)'),
    );
    const update = () => {
      if (timeout.value.trim()) step.timeout = timeout.value.trim();
      else delete step.timeout;
      const n = Number(attempts.value);
      if (attempts.value && n) {
        step.retry = { ...(step.retry || {}), max_attempts: n };
        if (backoff.value.trim()) step.retry.backoff = backoff.value.trim();
        else delete step.retry.backoff;
      } else {
        delete step.retry;
      }
      if (onFailure.value === 'continue') step.on_failure = 'continue';
      else delete step.on_failure;
      commit();
    };
    for (const c of [timeout, attempts, backoff]) c.addEventListener('input', update);
    onFailure.addEventListener('change', update);
    return h(
      'details',
      { class: 'policy', open: Boolean(step.timeout || step.retry || step.on_failure) },
      h('summary', null, 'Time-out, retries, failure'),
      h('div', { class: 'row' }, field('Time-out per attempt', timeout), field('Attempts', attempts), field('Backoff', backoff)),
      field('When it fails', onFailure),
    );
  }

  async function save() {
    fromYaml();
    serverErrors = { general: [], steps: new Map() };
    saveBtn.disabled = true;
    try {
      const r = await api.post('/v1/workflows', { yaml: yamlArea.value });
      const wf = r.workflow || {};
      savedName = wf.name || doc.name;
      toast(r.changed ? `Saved ${savedName} as version ${wf.version}` : `${savedName} unchanged (version ${wf.version})`, 'ok');
      clear(yamlStatus).append(h('div', { class: 'notice ok', role: 'status', id: 'save-status' }, r.changed ? `Saved as version ${wf.version}.` : `No change: version ${wf.version} is the same.`));
      if (isNew || savedName !== name) history.replaceState(null, '', `#/workflows/${enc(savedName)}`);
      loadRuns(runsHost, savedName, showRun);
    } catch (err) {
      const ids = err.status === 400 ? stepsInServerError(err.message, doc) : [];
      const known = ids.filter((id) => doc.steps.some((s) => s && s.id === id));
      if (known.length) for (const id of known) serverErrors.steps.set(id, [`server: ${err.message}`]);
      else serverErrors.general.push(`server: ${err.message}`);
      clear(yamlStatus).append(errorBox(err, 'save the workflow'));
      drawGraph();
      refreshEditorErrors();
    } finally {
      saveBtn.disabled = false;
    }
  }

  async function run() {
    const wfName = savedName || doc.name;
    let inputs = {};
    if (inputsArea.value.trim()) {
      try {
        inputs = JSON.parse(inputsArea.value);
      } catch (err) {
        clear(runHost).append(errorBox(new Error(`run inputs are not JSON: ${err.message}`)));
        return;
      }
    }
    runBtn.disabled = true;
    try {
      const r = await api.post(`/v1/workflows/${enc(wfName)}/runs`, { inputs });
      showRun(r.run);
    } catch (err) {
      clear(runHost).append(errorBox(err, `run ${wfName}`));
    } finally {
      runBtn.disabled = false;
    }
  }

  function paintRun(run) {
    runStates = new Map((run.steps || []).map((s) => [s.id, { state: s.state, attempts: s.attempts }]));
    drawGraph();
    clear(runHost).append(runPanel(run, { canCancel: writer }));
  }

  function showRun(run) {
    if (stopWatch) stopWatch();
    stopWatch = null;
    paintRun(run);
    if (!isFinished(run)) {
      stopWatch = watchRun(
        run.id,
        (r) => {
          paintRun(r);
          if (isFinished(r)) loadRuns(runsHost, savedName || doc.name, showRun);
        },
        (err) => clear(runHost).append(errorBox(err, 'follow the run')),
      );
    }
  }

  async function start() {
    if (isNew) {
      yamlArea.value = NEW_TEMPLATE;
      fromYaml();
      selected = doc.steps[0]?.id ?? null;
      drawGraph();
      renderEditor();
      clear(runsHost).append(h('p', { class: 'muted' }, 'Save the workflow to run it.'));
      return;
    }
    try {
      const { workflow } = await api.get(`/v1/workflows/${enc(name)}`);
      yamlArea.value = workflow.yaml || '';
      fromYaml();
      loadRuns(runsHost, name, showRun);
    } catch (err) {
      clear(graphHost).append(errorBox(err, `load ${name}`));
    }
  }
  start();

  return () => {
    if (stopWatch) stopWatch();
    clearTimeout(yamlTimer);
  };
}
