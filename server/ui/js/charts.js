// Line charts drawn in SVG: time on x (the polled window), one or more series on y, a
// gap where a value is missing (null), four grid lines with labels, a legend with the
// latest values. No library.

import { h, svg } from './dom.js';

const W = 420;
const H = 170;
const M = { top: 10, right: 10, bottom: 20, left: 56 };

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// series: [{name, points: [[tMs, value|null]], dashed?}]; format(v) labels values.
export function lineChart({ id, title, series, format = String, windowMs, now = Date.now(), empty = 'waiting for data…' }) {
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null && Number.isFinite(v));
  const maxY = niceMax(values.length ? Math.max(...values) : 0);
  const t0 = now - windowMs;
  const x = (t) => M.left + ((t - t0) / windowMs) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - (v / maxY) * (H - M.top - M.bottom);
  const latest = series.map((s) => {
    const last = [...s.points].reverse().find((p) => p[1] !== null && Number.isFinite(p[1]));
    return last ? format(last[1]) : '–';
  });
  const summary = `${title}: ${series.map((s, i) => `${s.name} ${latest[i]}`).join(', ')}`;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary });
  root.append(svg('title', null, summary));
  const grid = svg('g', { class: 'axis' });
  const flat = !values.length || Math.max(...values) === 0;
  for (let i = 0; i <= 4; i += 1) {
    const v = (maxY * i) / 4;
    const yy = y(v);
    grid.append(
      svg('line', { x1: String(M.left), x2: String(W - M.right), y1: String(yy), y2: String(yy), class: 'grid' }),
      flat && i > 0 ? null : svg('text', { x: String(M.left - 6), y: String(yy + 4), 'text-anchor': 'end' }, format(v)),
    );
  }
  const minutes = Math.round(windowMs / 60000);
  grid.append(
    svg('text', { x: String(M.left), y: String(H - 6) }, `−${minutes} min`),
    svg('text', { x: String(W - M.right), y: String(H - 6), 'text-anchor': 'end' }, 'now'),
  );
  root.append(grid);
  series.forEach((s, i) => {
    let d = '';
    let pen = false;
    for (const [t, v] of s.points) {
      if (t < t0 || v === null || !Number.isFinite(v)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'} ${x(t).toFixed(1)} ${y(v).toFixed(1)} `;
      pen = true;
    }
    if (d) root.append(svg('path', { d, class: `series s${i % 6}${s.dashed ? ' forecast' : ''}` }));
    // The latest value as a dot, so a series with one sample so far shows too.
    const last = [...s.points].reverse().find(([t, v]) => t >= t0 && v !== null && Number.isFinite(v));
    if (last && !s.dashed) root.append(svg('circle', { cx: x(last[0]).toFixed(1), cy: y(last[1]).toFixed(1), r: '3', class: `dot d${i % 6}` }));
  });
  if (!values.length) {
    root.append(svg('text', { x: String(W / 2), y: String(H / 2), 'text-anchor': 'middle' }, empty));
  }
  return h(
    'figure',
    { class: 'chart panel', id },
    h('figcaption', null, h('h3', null, title)),
    root,
    h(
      'ul',
      { class: 'legend' },
      series.map((s, i) => h('li', null, h('span', { class: `swatch s${i % 6}` }), `${s.name}: `, h('strong', null, latest[i]))),
    ),
  );
}

export const formats = {
  perSecond: (v) => `${v >= 100 ? Math.round(v) : Number(v.toFixed(2))}/s`,
  ms: (v) => `${v >= 100 ? Math.round(v) : Number(v.toFixed(1))} ms`,
  count: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2)),
  bytes: (v) => {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let x = v;
    while (x >= 1024 && i < units.length - 1) {
      x /= 1024;
      i += 1;
    }
    return `${x >= 100 || i === 0 ? Math.round(x) : x.toFixed(1)} ${units[i]}`;
  },
};
