// Workflow definitions in the designer: the parsed YAML document is the model (so keys
// the designer does not edit, such as triggers and inputs, survive a round trip);
// validation mirrors the server's (orchestrator/src/workflow/mod.rs) and attaches each
// problem to the step it is about; server errors from apply are mapped the same way.

import { dump, load } from '../vendor/js-yaml.mjs';

// kind -> required and optional parameters, and how the editor reads each field.
export const STEP_KINDS = {
  search: { required: ['collection'], optional: ['text', 'top_k', 'filter'] },
  ingest: { required: ['collection'], optional: ['text', 'path', 'source'] },
  embed: { required: ['text'], optional: [] },
  filter: { required: ['items'], optional: ['min_score', 'where', 'limit'] },
  call_agent: { required: ['agent', 'text'], optional: ['data'] },
  wait_event: { required: ['topic'], optional: ['kind', 'subject'] },
  notify: { required: ['message'], optional: ['data', 'queue', 'subject'] },
  ask: { required: ['prompt'], optional: [] },
  sleep: { required: [], optional: [] },
};
export const KIND_NAMES = Object.keys(STEP_KINDS);
// Parameters that are numbers or structured values rather than text.
export const PARAM_TYPES = { top_k: 'int', limit: 'int', min_score: 'number', where: 'yaml', data: 'yaml' };
const STEP_KEYS = new Set(['id', 'needs', 'timeout', 'retry', 'on_failure', ...KIND_NAMES]);
const TOP_KEYS = new Set(['name', 'description', 'agent', 'priority', 'inputs', 'triggers', 'timeout', 'steps']);
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const TOPICS = ['ingestion', 'standing_query', 'agent_health', 'agent_lifecycle', 'workflow', 'alerts'];

export function parseYaml(text) {
  const doc = load(text);
  if (doc === undefined || doc === null) return { doc: { steps: [] } };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error('a workflow definition is a mapping (name, steps, ...)');
  if (doc.steps === undefined || doc.steps === null) doc.steps = [];
  if (!Array.isArray(doc.steps)) throw new Error('steps must be a list');
  return { doc };
}

// Steps are written id, needs, action, policy (other keys after), whatever order the
// edits left them in.
const STEP_ORDER = ['id', 'needs', ...KIND_NAMES, 'timeout', 'retry', 'on_failure'];

function orderedStep(step) {
  if (!step || typeof step !== 'object' || Array.isArray(step)) return step;
  const out = {};
  for (const k of STEP_ORDER) if (step[k] !== undefined) out[k] = step[k];
  for (const [k, v] of Object.entries(step)) if (!(k in out)) out[k] = v;
  return out;
}

export function toYaml(doc) {
  const copy = { ...doc };
  if (Array.isArray(doc.steps)) copy.steps = doc.steps.map(orderedStep);
  return dump(copy, { lineWidth: 100, noRefs: true, flowLevel: 3, sortKeys: false });
}

export function stepKind(step) {
  const kinds = KIND_NAMES.filter((k) => step && step[k] !== undefined);
  return kinds.length === 1 ? kinds[0] : kinds.length ? 'several' : 'none';
}

export function needsOf(step) {
  return Array.isArray(step && step.needs) ? step.needs.map(String) : [];
}

export function newStep(doc, kind) {
  const ids = new Set((doc.steps || []).map((s) => s && s.id));
  let n = (doc.steps || []).length + 1;
  while (ids.has(`${kind.replace('_', '-')}-${n}`)) n += 1;
  const step = { id: `${kind.replace('_', '-')}-${n}` };
  step[kind] = defaultParams(kind);
  return step;
}

export function defaultParams(kind) {
  switch (kind) {
    case 'sleep':
      return '1s';
    case 'embed':
      return { text: 'hello' };
    case 'notify':
      return { message: 'done' };
    case 'ask':
      return { prompt: 'Continue?' };
    default: {
      const p = {};
      for (const r of STEP_KINDS[kind].required) p[r] = '';
      return p;
    }
  }
}

// Connect: `to` waits for `from`. Returns an error message or ''.
export function addNeed(doc, fromId, toId) {
  if (fromId === toId) return 'a step cannot wait for itself';
  const to = doc.steps.find((s) => s.id === toId);
  if (!to) return `no step '${toId}'`;
  const needs = needsOf(to);
  if (needs.includes(fromId)) return `${toId} already waits for ${fromId}`;
  if (dependsOn(doc, fromId, toId)) return `${fromId} already depends on ${toId}: that would be a cycle`;
  to.needs = [...needs, fromId];
  return '';
}

export function removeNeed(doc, fromId, toId) {
  const to = doc.steps.find((s) => s.id === toId);
  if (!to) return;
  const needs = needsOf(to).filter((n) => n !== fromId);
  if (needs.length) to.needs = needs;
  else delete to.needs;
}

// Does step a (transitively) depend on step b?
export function dependsOn(doc, a, b) {
  const byId = new Map(doc.steps.map((s) => [s.id, s]));
  const seen = new Set();
  const stack = [a];
  while (stack.length) {
    const id = stack.pop();
    if (id === b && id !== a) return true;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const n of needsOf(byId.get(id))) stack.push(n);
  }
  return false;
}

export function renameStep(doc, oldId, newId) {
  for (const s of doc.steps) {
    if (s.id === oldId) s.id = newId;
    const needs = needsOf(s);
    if (needs.includes(oldId)) s.needs = needs.map((n) => (n === oldId ? newId : n));
  }
  // Templates that read the old step's output follow the rename.
  const re = new RegExp(`steps\\.${oldId.replace(/[-]/g, '\\-')}\\b`, 'g');
  const rewrite = (v) => {
    if (typeof v === 'string') return v.replace(re, `steps.${newId}`);
    if (Array.isArray(v)) return v.map(rewrite);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rewrite(x)]));
    return v;
  };
  for (const s of doc.steps) {
    const kind = stepKind(s);
    if (STEP_KINDS[kind]) s[kind] = rewrite(s[kind]);
  }
}

export function removeStep(doc, id) {
  doc.steps = doc.steps.filter((s) => s.id !== id);
  for (const s of doc.steps) removeNeed(doc, id, s.id);
}

function templates(value, out = []) {
  if (typeof value === 'string') {
    for (const m of value.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) out.push(m[1]);
  } else if (Array.isArray(value)) {
    value.forEach((v) => templates(v, out));
  } else if (value && typeof value === 'object') {
    Object.values(value).forEach((v) => templates(v, out));
  }
  return out;
}

// Client-side checks. Returns { general: [messages], steps: Map(id -> [messages]) }.
export function validate(doc) {
  const general = [];
  const steps = new Map();
  const at = (id, msg) => {
    if (!steps.has(id)) steps.set(id, []);
    steps.get(id).push(msg);
  };
  if (!doc || typeof doc !== 'object') return { general: ['the definition is empty'], steps };
  if (!NAME_RE.test(String(doc.name ?? ''))) {
    general.push(`workflow name '${doc.name ?? ''}' is not valid: 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit`);
  }
  for (const k of Object.keys(doc)) if (!TOP_KEYS.has(k)) general.push(`unknown key '${k}'`);
  if (doc.priority !== undefined && !(Number(doc.priority) >= -100 && Number(doc.priority) <= 100)) {
    general.push(`priority ${doc.priority} is out of range -100..100`);
  }
  const list = Array.isArray(doc.steps) ? doc.steps : [];
  if (!list.length) general.push('a workflow needs at least one step');
  if (list.length > 100) general.push(`${list.length} steps; the limit is 100`);
  const ids = new Set();
  list.forEach((s, i) => {
    if (!s || typeof s !== 'object') {
      general.push(`step ${i + 1} is not a mapping`);
      return;
    }
    const id = String(s.id ?? '');
    if (!NAME_RE.test(id)) at(id || `#${i + 1}`, `step id '${id}' is not valid: 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit`);
    if (ids.has(id)) at(id, `two steps are called '${id}'`);
    ids.add(id);
  });
  for (const s of list) {
    if (!s || typeof s !== 'object') continue;
    const id = String(s.id ?? '');
    for (const k of Object.keys(s)) if (!STEP_KEYS.has(k)) at(id, `unknown key '${k}'`);
    const kind = stepKind(s);
    if (kind === 'none') at(id, `has no action; give exactly one of ${KIND_NAMES.join(', ')}`);
    else if (kind === 'several') at(id, `has several actions (${KIND_NAMES.filter((k) => s[k] !== undefined).join(', ')}); give exactly one`);
    else if (kind === 'sleep') {
      if (!/^\d+(ms|s|m|h|d)?$/.test(String(s.sleep).trim())) at(id, `sleep takes a duration such as 250ms, 5s or 2m, not '${s.sleep}'`);
    } else {
      const params = s[kind];
      if (!params || typeof params !== 'object' || Array.isArray(params)) {
        at(id, `${kind} takes a mapping of parameters`);
      } else {
        const spec = STEP_KINDS[kind];
        for (const r of spec.required) if (params[r] === undefined || params[r] === null || params[r] === '') at(id, `${kind} needs '${r}'`);
        for (const k of Object.keys(params)) {
          if (!spec.required.includes(k) && !spec.optional.includes(k)) {
            at(id, `${kind} has no parameter '${k}' (it takes ${[...spec.required, ...spec.optional].sort().join(', ')})`);
          }
        }
        if (kind === 'wait_event') {
          if (params.topic && !TOPICS.includes(params.topic)) at(id, `unknown topic '${params.topic}' (${TOPICS.join(', ')})`);
          if (s.timeout === undefined) at(id, 'wait_event needs a timeout (how long to wait)');
        }
        if (kind === 'ingest' && (params.text === undefined) === (params.path === undefined)) at(id, "ingest takes exactly one of 'text' and 'path'");
      }
    }
    if (s.retry !== undefined) {
      const r = s.retry || {};
      if (!(Number(r.max_attempts) >= 1 && Number(r.max_attempts) <= 20)) at(id, 'retry.max_attempts must be 1..20');
      if (r.factor !== undefined && !(Number(r.factor) >= 1 && Number(r.factor) <= 10)) at(id, 'retry.factor must be between 1 and 10');
    }
    if (s.on_failure !== undefined && !['fail', 'continue'].includes(s.on_failure)) at(id, "on_failure is 'fail' or 'continue'");
    const seen = new Set();
    for (const n of needsOf(s)) {
      if (n === id) at(id, 'needs itself');
      else if (!ids.has(n)) at(id, `needs '${n}', which is not a step of this workflow`);
      if (seen.has(n)) at(id, `needs '${n}' twice`);
      seen.add(n);
    }
  }
  const cycle = cycleThrough(list);
  for (const id of cycle) at(id, `the steps' needs form a cycle through ${cycle.join(', ')}`);
  if (!cycle.length) {
    for (const s of list) {
      if (!s || typeof s !== 'object') continue;
      const kind = stepKind(s);
      if (!STEP_KINDS[kind]) continue;
      for (const path of templates(s[kind])) {
        const [root, dep] = path.split(/[.[]/);
        if (['inputs', 'run', 'trigger', 'workflow'].includes(root)) continue;
        if (root !== 'steps') {
          at(s.id, `template {{ ${path} }}: a template starts with inputs, steps, run, trigger or workflow`);
        } else if (!dep) {
          at(s.id, 'steps.<id> expected in a template');
        } else if (!dependsOn({ steps: list }, s.id, dep)) {
          at(s.id, `reads steps.${dep}, which it does not depend on (add it to needs)`);
        }
      }
    }
  }
  return { general, steps };
}

function cycleThrough(list) {
  const ids = list.filter((s) => s && typeof s === 'object').map((s) => String(s.id));
  const indeg = new Map(ids.map((id) => [id, 0]));
  const children = new Map(ids.map((id) => [id, []]));
  for (const s of list) {
    if (!s || typeof s !== 'object') continue;
    for (const n of needsOf(s)) {
      if (!indeg.has(n) || n === s.id) continue;
      indeg.set(String(s.id), indeg.get(String(s.id)) + 1);
      children.get(n).push(String(s.id));
    }
  }
  const ready = ids.filter((id) => indeg.get(id) === 0);
  while (ready.length) {
    const id = ready.shift();
    for (const c of children.get(id)) {
      indeg.set(c, indeg.get(c) - 1);
      if (indeg.get(c) === 0) ready.push(c);
    }
  }
  return ids.filter((id) => indeg.get(id) > 0);
}

// Which steps a server validation message is about: "step 'x': ...", "step 'x' reads
// ...", "needs form a cycle through a, b", "two steps are called 'x'", serde's
// "steps[3]: ..." (by position).
export function stepsInServerError(message, doc) {
  const found = new Set();
  for (const m of message.matchAll(/step (?:id )?'([^']+)'/g)) found.add(m[1]);
  const cyc = message.match(/cycle through ([a-z0-9_, -]+)/);
  if (cyc) cyc[1].split(',').map((x) => x.trim()).filter(Boolean).forEach((x) => found.add(x));
  const two = message.match(/two steps are called '([^']+)'/);
  if (two) found.add(two[1]);
  for (const m of message.matchAll(/steps\[(\d+)\]/g)) {
    const s = (doc.steps || [])[Number(m[1])];
    if (s && s.id) found.add(String(s.id));
  }
  return [...found];
}
