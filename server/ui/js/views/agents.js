// Agents and events: registered agents with lifecycle state and health (suspend,
// activate, retire for principals that may), the live event tail, queues with depth
// and dead letters, and the anomaly alerts. Lists refresh every five seconds.

import { api, enc } from '../api.js';
import {
  badge, button, clear, confirmByName, errorBox, fmtDuration, fmtNum, fmtTime, h, pageHeader, section, table, toast,
} from '../dom.js';
import { canAdmin, canWriteSomewhere } from '../session.js';
import { eventsTail } from './events_tail.js';

export const title = 'Agents & events';

const REFRESH_MS = 5000;

export function render(main) {
  const agentsHost = h('div', { id: 'agents' }, h('p', { class: 'loading' }, 'Loading agents…'));
  const queuesHost = h('div', { id: 'queues' }, h('p', { class: 'loading' }, 'Loading queues…'));
  const alertsHost = h('div', { id: 'alerts' }, h('p', { class: 'loading' }, 'Loading alerts…'));
  const tail = eventsTail();
  main.append(
    pageHeader('Agents and events', button('Refresh', () => refresh())),
    section('Agents', agentsHost),
    section('Live events', tail.element),
    h('div', { class: 'grid-2' }, section('Queues', queuesHost), section('Alerts', alertsHost)),
  );

  async function loadAgents() {
    try {
      const { agents = [] } = await api.get('/v1/agents');
      clear(agentsHost).append(agentsTable(agents, loadAgents));
    } catch (err) {
      clear(agentsHost).append(errorBox(err, 'list agents'));
    }
  }
  async function loadQueues() {
    try {
      const { queues = [] } = await api.get('/v1/queues');
      clear(queuesHost).append(queuesTable(queues));
    } catch (err) {
      clear(queuesHost).append(errorBox(err, 'list queues'));
    }
  }
  async function loadAlerts() {
    try {
      const { alerts = [] } = await api.get('/v1/alerts');
      clear(alertsHost).append(alertsTable(alerts));
    } catch (err) {
      clear(alertsHost).append(errorBox(err, 'list alerts'));
    }
  }
  function refresh() {
    // Skip a refresh while a control in a table has focus, so keyboard users keep it.
    const active = document.activeElement;
    if (active && active !== document.body && (agentsHost.contains(active) || queuesHost.contains(active))) return;
    loadAgents();
    loadQueues();
    loadAlerts();
  }
  loadAgents();
  loadQueues();
  loadAlerts();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => {
    clearInterval(timer);
    tail.stop();
  };
}

async function setState(name, state, reload) {
  if (state === 'retired') {
    const ok = await confirmByName({
      title: `Retire agent ${name}?`,
      message: 'A retired agent cannot come back and its name cannot be reused. Its memory collection is kept.',
      name,
      confirmText: 'Retire agent',
    });
    if (!ok) return;
  }
  try {
    await api.post(`/v1/agents/${enc(name)}/state`, { state, reason: 'from the console' });
    toast(`${name}: ${state}`, 'ok');
  } catch (err) {
    toast(`${name}: ${err.message}`, 'error');
  }
  await reload();
  // Keep keyboard users in the same row: its first action, else the row's name.
  const row = document.querySelector(`#agents-table tr[data-agent="${CSS.escape(name)}"]`);
  const next = row && row.querySelector('button');
  if (next) next.focus();
}

function agentsTable(agents, reload) {
  if (!agents.length) return h('p', { class: 'muted' }, 'No agents registered.');
  const writer = canWriteSomewhere();
  const admin = canAdmin();
  const rows = agents.map((a) => {
    const card = a.card || {};
    const actions = h('div', { class: 'row' });
    if (writer && (a.state === 'suspended' || a.state === 'registered')) {
      actions.append(button('Activate', () => setState(card.name, 'active', reload), { class: 'small', 'aria-label': `Activate ${card.name}` }));
    }
    if (writer && a.state === 'active') {
      actions.append(button('Suspend', () => setState(card.name, 'suspended', reload), { class: 'small', 'aria-label': `Suspend ${card.name}` }));
    }
    if (admin && a.state !== 'retired') {
      actions.append(button('Retire', () => setState(card.name, 'retired', reload), { class: 'small danger', 'aria-label': `Retire ${card.name}` }));
    }
    const since = a.lastHeartbeatUnixMs ? Date.now() - Number(a.lastHeartbeatUnixMs) : NaN;
    return h(
      'tr',
      { dataset: { agent: card.name } },
      h('td', null, h('strong', null, card.name), card.description ? h('span', { class: 'sub' }, card.description) : null, card.version ? h('span', { class: 'sub' }, `version ${card.version}`) : null),
      h('td', null, badge(a.state || 'unknown')),
      h(
        'td',
        null,
        a.state === 'active' ? badge(a.healthy ? 'healthy' : 'unhealthy') : h('span', { class: 'muted' }, 'not checked'),
        h('span', { class: 'sub' }, Number.isFinite(since) ? `last heartbeat ${fmtDuration(since)} ago` : 'no heartbeat'),
      ),
      h('td', null, (card.skills || []).map((s) => s.name || s.id).join(', ') || '–', card.endpoint ? h('span', { class: 'sub' }, card.endpoint) : null),
      h('td', null, a.memoryCollection ? h('a', { href: `#/collections/${enc(a.memoryCollection)}` }, a.memoryCollection) : '–'),
      h('td', null, actions),
    );
  });
  return table(['Agent', 'State', 'Health', 'Skills', 'Memory', 'Actions'], rows, { id: 'agents-table' });
}

function queuesTable(queues) {
  if (!queues.length) return h('p', { class: 'muted' }, 'No queues.');
  const byName = new Map(queues.map((q) => [q.name, q]));
  const rows = queues
    .filter((q) => !(q.name.endsWith('.dlq') && queues.some((x) => x.deadLetterQueue === q.name)))
    .map((q) => {
      const dlq = q.deadLetterQueue ? byName.get(q.deadLetterQueue) : null;
      const age = q.oldestSentUnixMs ? fmtDuration(Date.now() - Number(q.oldestSentUnixMs)) : '–';
      return h(
        'tr',
        { dataset: { queue: q.name } },
        h('td', null, h('strong', null, q.name), h('span', { class: 'sub' }, `max ${q.maxAttempts || '∞'} attempts, visibility ${fmtDuration(q.visibilityTimeoutMs)}`)),
        h('td', { class: 'num' }, fmtNum(q.messages), h('span', { class: 'sub' }, `oldest ${age}`)),
        h('td', { class: 'num' }, fmtNum(q.ready)),
        h('td', { class: 'num' }, fmtNum(q.inFlight)),
        h('td', { class: 'num' }, dlq ? fmtNum(dlq.messages) : q.deadLetterQueue ? '?' : '–', q.deadLetterQueue ? h('span', { class: 'sub' }, q.deadLetterQueue) : null),
      );
    });
  return table(['Queue', 'Depth', 'Ready', 'In flight', 'Dead letters'], rows, { id: 'queues-table' });
}

function alertsTable(alerts) {
  if (!alerts.length) return h('p', { class: 'muted' }, 'No alerts: the anomaly detector has seen nothing unusual.');
  const rows = [...alerts].reverse().map((a) =>
    h(
      'tr',
      null,
      h('td', null, a.signal),
      h('td', null, badge(a.state)),
      h('td', { class: 'num' }, fmtNum(a.value, 2), h('span', { class: 'sub' }, `baseline ${fmtNum(a.baseline, 2)}, z ${fmtNum(a.z, 1)}`)),
      h('td', null, fmtTime(a.startedUnixMs), a.resolvedUnixMs ? h('span', { class: 'sub' }, `resolved ${fmtTime(a.resolvedUnixMs)}`) : null),
    ),
  );
  return table(['Signal', 'State', 'Value', 'Since'], rows, { id: 'alerts-table' });
}
