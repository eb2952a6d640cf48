// Prometheus text format (0.0.4) parsing and the derived series the operations page
// charts: rates from counters, latency percentiles from histogram bucket deltas.

// Returns [{name, labels: {k: v}, value}] for every sample line.
export function parsePrometheus(text) {
  const out = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    let name;
    let labels = {};
    let rest;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    if (brace >= 0 && (space < 0 || brace < space)) {
      name = line.slice(0, brace);
      const parsed = parseLabels(line, brace + 1);
      labels = parsed.labels;
      rest = line.slice(parsed.end + 1).trim();
    } else {
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    const valueText = rest.split(/\s+/)[0];
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    out.push({ name, labels, value });
  }
  return out;
}

function parseLabels(line, start) {
  const labels = {};
  let i = start;
  while (i < line.length && line[i] !== '}') {
    while (line[i] === ' ' || line[i] === ',') i += 1;
    if (line[i] === '}') break;
    const eq = line.indexOf('=', i);
    const key = line.slice(i, eq).trim();
    i = eq + 2; // skip ="
    let value = '';
    while (i < line.length && line[i] !== '"') {
      if (line[i] === '\\') {
        const next = line[i + 1];
        value += next === 'n' ? '\n' : next;
        i += 2;
      } else {
        value += line[i];
        i += 1;
      }
    }
    labels[key] = value;
    i += 1; // closing quote
  }
  return { labels, end: i };
}

export function sum(samples, name, where = () => true) {
  return samples.filter((s) => s.name === name && where(s.labels)).reduce((n, s) => n + s.value, 0);
}

export function byLabel(samples, name, label) {
  const out = new Map();
  for (const s of samples) if (s.name === name) out.set(s.labels[label] ?? '', (out.get(s.labels[label] ?? '') || 0) + s.value);
  return out;
}

// Histogram buckets {le -> cumulative count} summed over the series that match.
export function buckets(samples, name, where = () => true) {
  const out = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !where(s.labels)) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    out.set(le, (out.get(le) || 0) + s.value);
  }
  return out;
}

// The q-quantile of the observations between two bucket snapshots (linear within a
// bucket, as Prometheus' histogram_quantile does); null when nothing was observed.
export function quantileBetween(before, after, q) {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => Math.max(0, (after.get(le) || 0) - ((before && before.get(le)) || 0)));
  const total = counts[counts.length - 1];
  if (!total) return null;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (let i = 0; i < bounds.length; i += 1) {
    if (counts[i] >= rank) {
      const upper = bounds[i];
      if (upper === Infinity) return prevBound;
      const inBucket = counts[i] - prevCount;
      if (!inBucket) return upper;
      return prevBound + ((upper - prevBound) * (rank - prevCount)) / inBucket;
    }
    prevBound = bounds[i];
    prevCount = counts[i];
  }
  return prevBound;
}

const SEARCH = '/agentdb.v1.Items/Search';
const SEARCH_BATCH = '/agentdb.v1.Items/SearchBatch';
// gRPC codes that mean the server failed, not the caller (OPERATIONS.md, anomaly alerts).
const SERVER_ERROR_CODES = new Set(['2', '4', '8', '13', '14', '15']);

// One poll's numbers, from this scrape and the previous one.
export function derive(prev, cur) {
  const point = { t: cur.t };
  const s = cur.samples;
  point.searchesTotal = sum(s, 'agentdb_searches_total');
  point.searchRequests = sum(s, 'agentdb_grpc_requests_total', (l) => l.method === SEARCH || l.method === SEARCH_BATCH);
  point.requestsByCode = byLabel(s, 'agentdb_grpc_requests_total', 'code');
  point.searchBuckets = buckets(s, 'agentdb_grpc_request_duration_seconds', (l) => l.method === SEARCH);
  point.encoderQueues = byLabel(s, 'agentdb_encoder_queue_depth', 'encoder');
  point.gpuUsed = sum(s, 'agentdb_gpu_memory_used_bytes');
  point.gpuBudget = sum(s, 'agentdb_gpu_memory_budget_bytes');
  point.gpuTotal = sum(s, 'agentdb_gpu_device_total_bytes');
  point.rss = sum(s, 'process_resident_memory_bytes');
  point.diskBytes = sum(s, 'agentdb_collection_disk_bytes');
  if (!prev) return point;
  const dt = (cur.t - prev.t) / 1000;
  const rate = (a, b) => (b >= a && dt > 0 ? (b - a) / dt : null); // a restart resets counters
  // Requests, and the index searches behind them (one per space, modality and keyword
  // list of a cross-modal query, one per query of a batch).
  point.searchRate = rate(prev.searchRequests, point.searchRequests);
  point.indexSearchRate = rate(prev.searchesTotal, point.searchesTotal);
  let serverErrors = 0;
  let refused = 0;
  let restarted = false;
  for (const [code, v] of point.requestsByCode) {
    const d = v - (prev.requestsByCode.get(code) || 0);
    if (d < 0) restarted = true;
    if (code === '0') continue;
    if (SERVER_ERROR_CODES.has(code)) serverErrors += d;
    else refused += d;
  }
  point.serverErrorRate = restarted || dt <= 0 ? null : serverErrors / dt;
  point.refusedRate = restarted || dt <= 0 ? null : refused / dt;
  for (const q of [0.5, 0.95, 0.99]) {
    const v = restarted ? null : quantileBetween(prev.searchBuckets, point.searchBuckets, q);
    point[`p${Math.round(q * 100)}`] = v === null ? null : v * 1000;
  }
  return point;
}
