// A workflow's steps drawn as a DAG in SVG: one column per dependency depth (a step
// sits one column right of the deepest step it needs), boxes in definition order within
// a column, arrows from each need to its dependent. Boxes and their output handles are
// focusable buttons, so the graph can be edited from the keyboard as well.

import { svg } from './dom.js';
import { needsOf, stepKind } from './workflow_model.js';

const BOX_W = 168;
const BOX_H = 52;
const GAP_X = 64;
const GAP_Y = 22;
const PAD = 16;

export function layout(steps) {
  const byId = new Map();
  steps.forEach((s, i) => {
    if (s && typeof s === 'object' && s.id !== undefined && !byId.has(String(s.id))) byId.set(String(s.id), { step: s, index: i });
  });
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle: validation reports it; draw it anyway
    visiting.add(id);
    let d = 0;
    for (const n of needsOf(byId.get(id).step)) if (byId.has(n)) d = Math.max(d, depthOf(n) + 1);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const columns = [];
  for (const id of byId.keys()) {
    const d = depthOf(id);
    (columns[d] ||= []).push(id);
  }
  const positions = new Map();
  let rows = 0;
  columns.forEach((col, c) => {
    (col || []).forEach((id, r) => {
      positions.set(id, { x: PAD + c * (BOX_W + GAP_X), y: PAD + r * (BOX_H + GAP_Y), depth: c });
    });
    rows = Math.max(rows, (col || []).length);
  });
  const width = PAD * 2 + Math.max(1, columns.length) * (BOX_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, rows) * (BOX_H + GAP_Y) - GAP_Y + BOX_H / 2;
  return { positions, width, height, byId };
}

function shorten(text, n) {
  const t = String(text);
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

// Renders into `host` (an element holding the svg). `opts`:
//   errors: Map(id -> [messages]); states: Map(id -> {state, attempts}); selected: id;
//   connectFrom: id (a connection being made); onSelect(id), onHandle(id),
//   onConnect(from, to), onEdge(from, to). Escape is the caller's (it cancels connecting).
export function renderDag(host, steps, opts) {
  const focused = document.activeElement;
  const focusKey = focused && host.contains(focused) ? focused.getAttribute('data-focus-key') : null;
  const { positions, width, height, byId } = layout(steps);
  const root = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width: String(width),
    height: String(height),
    role: 'group',
    'aria-label': 'Workflow graph: each box is a step; arrows point from a step to the steps that wait for it',
    class: 'dag',
  });
  root.append(
    svg(
      'defs',
      null,
      svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '8', markerHeight: '8', orient: 'auto-start-reverse' },
        svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' })),
    ),
  );
  const edges = svg('g', { class: 'edges' });
  const nodes = svg('g', { class: 'nodes' });
  root.append(edges, nodes);

  for (const [id, { step }] of byId) {
    const to = positions.get(id);
    for (const need of needsOf(step)) {
      const from = positions.get(need);
      if (!from) continue;
      const x1 = from.x + BOX_W;
      const y1 = from.y + BOX_H / 2;
      const x2 = to.x;
      const y2 = to.y + BOX_H / 2;
      // A need drawn to a box left of (or in the same column as) it is part of a cycle;
      // one that skips columns bends below the boxes between.
      const back = x2 <= x1;
      const skips = to.depth - from.depth > 1;
      const dx = back ? 60 : Math.max(24, (x2 - x1) / 2);
      let d = `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`;
      if (skips) {
        const below = Math.max(from.y, to.y) + BOX_H + GAP_Y / 2 + 4;
        d = `M ${x1} ${y1} C ${x1 + 40} ${y1}, ${x1 + 40} ${below}, ${x1 + 80} ${below} L ${x2 - 80} ${below} C ${x2 - 40} ${below}, ${x2 - 40} ${y2}, ${x2} ${y2}`;
      }
      const edge = svg('g', { class: 'edge-group', 'data-from': need, 'data-to': id });
      edge.append(
        svg('path', { d, class: 'edge', 'marker-end': 'url(#arrow)' }),
        svg('path', { d, class: 'edge-hit' }, svg('title', null, `${id} needs ${need} (click to remove)`)),
      );
      edge.addEventListener('click', () => opts.onEdge && opts.onEdge(need, id));
      edges.append(edge);
    }
  }

  for (const [id, { step }] of byId) {
    const p = positions.get(id);
    const kind = stepKind(step);
    const run = opts.states && opts.states.get(id);
    const errs = (opts.errors && opts.errors.get(id)) || [];
    const classes = ['node'];
    if (errs.length) classes.push('invalid');
    if (run) classes.push(`state-${run.state}`);
    if (opts.selected === id) classes.push('selected');
    if (opts.connectFrom && opts.connectFrom !== id) classes.push('connect-target');
    const label = [
      `Step ${id}, ${kind}`,
      run ? `, ${run.state}${run.attempts ? ` after ${run.attempts} attempt(s)` : ''}` : '',
      errs.length ? `, ${errs.length} problem(s): ${errs.join('; ')}` : '',
      opts.connectFrom && opts.connectFrom !== id ? `. Press Enter to make it wait for ${opts.connectFrom}` : '',
    ].join('');
    const g = svg('g', {
      class: classes.join(' '),
      transform: `translate(${p.x} ${p.y})`,
      tabindex: '0',
      role: 'button',
      'aria-label': label,
      'data-step': id,
      'data-focus-key': `node:${id}`,
      'aria-pressed': opts.selected === id ? 'true' : 'false',
    });
    g.append(
      svg('title', null, label),
      svg('rect', { class: 'box', width: String(BOX_W), height: String(BOX_H), rx: '6', ry: '6' }),
      svg('text', { x: '10', y: '20' }, shorten(id, 20)),
      svg('text', { x: '10', y: '38', class: 'kind' }, shorten(run ? `${kind} · ${run.state}${run.attempts > 1 ? ` ×${run.attempts}` : ''}` : kind, 24)),
    );
    if (errs.length) g.append(svg('text', { x: String(BOX_W - 16), y: '20', class: 'err-mark' }, '!'));
    const activate = () => {
      if (opts.connectFrom && opts.connectFrom !== id) opts.onConnect(opts.connectFrom, id);
      else opts.onSelect(id);
    };
    g.addEventListener('click', (e) => {
      if (e.target.closest('.handle')) return;
      activate();
    });
    g.addEventListener('keydown', (e) => {
      if (e.target !== g) return;
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        activate();
      }
    });
    if (opts.editable) {
      const handle = svg('circle', {
        class: `handle${opts.connectFrom === id ? ' active' : ''}`,
        cx: String(BOX_W),
        cy: String(BOX_H / 2),
        r: '7',
        tabindex: '0',
        role: 'button',
        'aria-label': opts.connectFrom === id ? `Cancel connecting from ${id}` : `Connect from ${id}: then choose the step that waits for it`,
        'data-handle': id,
        'data-focus-key': `handle:${id}`,
      });
      handle.append(svg('title', null, `Output of ${id}: click, then click the step that needs it`));
      const press = (e) => {
        e.stopPropagation();
        opts.onHandle(id);
      };
      handle.addEventListener('click', press);
      handle.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          press(e);
        }
      });
      g.append(handle);
    }
    nodes.append(g);
  }
  host.replaceChildren(root);
  if (focusKey) {
    const again = root.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
  return root;
}
