// Operations: charts of the server's own metrics, scraped from `/metrics` every few
// seconds (search rate, search latency percentiles, errors, encoder queues, GPU and
// process memory) and the disk forecast from `/v1/status`. History is kept while the
// console is open, so leaving and coming back keeps the window.

import { api } from '../api.js';
import { formats, lineChart } from '../charts.js';
import { clear, errorBox, fmtBytes, fmtNum, h, pageHeader } from '../dom.js';
import { derive, parsePrometheus } from '../metrics.js';

export const title = 'Operations';

const POLL_MS = 3000;
const WINDOW_MS = 10 * 60 * 1000;
const history = { points: [], last: null, status: [] };

function trim(list, now) {
  while (list.length && list[0].t < now - WINDOW_MS) list.shift();
}

export function render(main) {
  const statsHost = h('div', { class: 'stat-row', id: 'ops-stats' });
  const chartsHost = h('div', { class: 'charts', id: 'ops-charts' });
  const errorHost = h('div');
  const updated = h('span', { class: 'muted', 'aria-live': 'off', id: 'ops-updated' });
  main.append(pageHeader('Operations', updated), errorHost, statsHost, chartsHost);
  let timer = null;
  let stopped = false;

  async function poll() {
    const t = Date.now();
    try {
      const [text, status] = await Promise.all([
        api.text('/metrics'),
        api.get('/v1/status').catch((err) => ({ error: err })),
      ]);
      if (stopped) return;
      const scrape = { t, samples: parsePrometheus(text) };
      const point = derive(history.last, scrape);
      history.last = { ...point, t };
      history.points.push(point);
      trim(history.points, t);
      if (!status.error) {
        history.status.push({ t, ...status });
        trim(history.status, t);
      }
      clear(errorHost);
      if (status.error) errorHost.append(errorBox(status.error, 'read the server status'));
      draw(t, status.error ? null : status);
      updated.textContent = `updated ${new Date(t).toLocaleTimeString()}`;
    } catch (err) {
      if (stopped) return;
      clear(errorHost).append(errorBox(err, 'read /metrics'));
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  function series(name, key) {
    return { name, points: history.points.map((p) => [p.t, p[key] ?? null]) };
  }

  function draw(now, status) {
    clear(statsHost);
    if (status) {
      const days = Number(status.daysUntilDiskFull);
      statsHost.append(
        stat('Disk full in', Number.isFinite(days) && days > 0 ? `${fmtNum(days, days < 10 ? 1 : 0)} days` : 'not growing', 'disk-forecast'),
        stat('Growth', `${fmtBytes(status.growthBytesPerDay)}/day`),
        stat('Data', fmtBytes(status.dataBytes)),
        stat('Free disk', fmtBytes(status.diskFreeBytes)),
        stat('Queries', `${fmtNum(status.queriesPerSecond, 2)}/s`),
        stat('Device', status.device || '–'),
        stat('Version', status.version || '–'),
      );
    }
    const encoders = new Set(history.points.flatMap((p) => [...(p.encoderQueues || new Map()).keys()]));
    const queueSeries = [...encoders].map((e) => ({
      name: e,
      points: history.points.map((p) => [p.t, p.encoderQueues ? (p.encoderQueues.get(e) ?? null) : null]),
    }));
    const diskPoints = history.status.map((s) => [s.t, Number(s.dataBytes) || 0]);
    const disk = [{ name: 'data on disk', points: diskPoints }];
    // The forecast: the server's fitted growth, drawn from now to the end of the window.
    if (status && diskPoints.length) {
      const perMs = (Number(status.growthBytesPerDay) || 0) / 86400000;
      const base = Number(status.dataBytes) || 0;
      disk.push({
        name: 'trend (server fit)',
        dashed: true,
        points: [
          [now - WINDOW_MS, Math.max(0, base - perMs * WINDOW_MS)],
          [now, base],
        ],
      });
    }
    clear(chartsHost).append(
      lineChart({
        id: 'chart-search-rate',
        title: 'Search rate',
        series: [series('search requests', 'searchRate'), series('index searches', 'indexSearchRate')],
        format: formats.perSecond,
        windowMs: WINDOW_MS,
        now,
      }),
      lineChart({
        id: 'chart-latency',
        title: 'Search latency',
        series: [series('p50', 'p50'), series('p95', 'p95'), series('p99', 'p99')],
        format: formats.ms,
        windowMs: WINDOW_MS,
        now,
        empty: 'no searches in the window',
      }),
      lineChart({
        id: 'chart-errors',
        title: 'Errors',
        series: [series('server errors', 'serverErrorRate'), series('refused or invalid', 'refusedRate')],
        format: formats.perSecond,
        windowMs: WINDOW_MS,
        now,
      }),
      lineChart({ id: 'chart-encoders', title: 'Encoder queues', series: queueSeries.length ? queueSeries : [{ name: 'no encoders', points: [] }], format: formats.count, windowMs: WINDOW_MS, now }),
      lineChart({
        id: 'chart-gpu',
        title: 'GPU memory',
        series: [series('used', 'gpuUsed'), series('budget', 'gpuBudget')],
        format: formats.bytes,
        windowMs: WINDOW_MS,
        now,
      }),
      lineChart({ id: 'chart-memory', title: 'Process memory', series: [series('resident', 'rss')], format: formats.bytes, windowMs: WINDOW_MS, now }),
      lineChart({ id: 'chart-disk', title: 'Disk use and trend', series: disk, format: formats.bytes, windowMs: WINDOW_MS, now }),
    );
  }

  poll();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

function stat(label, value, id) {
  return h('div', { class: 'stat', id }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
}
