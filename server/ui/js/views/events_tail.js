// A live tail of the event bus: `GET /v1/events/stream?topic=...` read with fetch and
// a stream reader. Reconnects (with a growing pause) when the stream ends, until the
// view is left.

import { api, readEventStream } from '../api.js';
import { button, clear, errorBox, fmtTime, h, uid } from '../dom.js';

const MAX_SHOWN = 200;
// Events already retained by the server shown when the tail opens.
const HISTORY = 30;

export function eventsTail() {
  const topicsHost = h('div', { class: 'topic-picks', role: 'group', 'aria-label': 'Topics to follow' });
  const list = h('ol', { class: 'event-tail', id: 'event-tail', 'aria-live': 'off', 'aria-label': 'Latest events, newest first' });
  const state = h('span', { class: 'muted', id: 'event-tail-state', 'aria-live': 'polite' });
  const errorHost = h('div');
  let controller = null;
  let paused = false;
  let stopped = false;
  let retryMs = 1000;
  let retryTimer = null;
  // Where to resume: the offset after the last event shown; at first, recent history.
  let nextOffset = 0;
  let lastSeen = 0;
  const pause = button('Pause', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (paused) disconnect();
    else connect();
  }, { 'aria-pressed': 'false', id: 'event-tail-pause' });
  const clearBtn = button('Clear', () => clear(list));

  function selectedTopics() {
    return [...topicsHost.querySelectorAll('input:checked')].map((x) => x.value);
  }

  function disconnect() {
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = null;
    if (controller) controller.abort();
    controller = null;
    state.textContent = paused ? 'paused' : 'disconnected';
  }

  function show(event) {
    const data = event.data ?? event.dataJson ?? event.data_json;
    const li = h(
      'li',
      { dataset: { topic: event.topic || '', kind: event.kind || '' } },
      h('span', { class: 'muted' }, `${event.offset ?? ''} ${fmtTime(event.unixMs ?? event.unix_ms)} `),
      h('span', { class: 'topic' }, event.topic || ''),
      ' ',
      h('span', { class: 'kind' }, event.kind || ''),
      event.subject ? ` ${event.subject}` : '',
      data !== undefined && data !== null && data !== '' ? ` ${typeof data === 'string' ? data : JSON.stringify(data)}` : '',
    );
    list.prepend(li);
    while (list.children.length > MAX_SHOWN) list.lastChild.remove();
  }

  async function connect() {
    disconnect();
    if (paused || stopped) return;
    const mine = new AbortController();
    controller = mine;
    clear(errorHost);
    state.textContent = 'connecting…';
    try {
      const topics = selectedTopics();
      const all = topicsHost.querySelectorAll('input').length;
      state.textContent = 'live';
      await readEventStream(topics.length === all ? [] : topics, mine.signal, (event) => {
        retryMs = 1000;
        state.textContent = 'live';
        if (event.lagged) {
          list.prepend(h('li', { class: 'lagged' }, 'missed events: the stream fell behind the server\u2019s buffer'));
        } else {
          const e = event.event || event;
          if (Number(e.offset)) {
            nextOffset = Number(e.offset) + 1;
            lastSeen = Math.max(lastSeen, Number(e.offset));
          }
          show(e);
        }
      }, nextOffset);
      if (mine.signal.aborted) return;
      state.textContent = 'stream ended; reconnecting';
    } catch (err) {
      if (mine.signal.aborted || err.name === 'AbortError') return;
      clear(errorHost).append(errorBox(err, 'follow events'));
      if (err.status === 403 || err.status === 404 || err.status === 401) {
        state.textContent = 'stopped';
        return;
      }
      state.textContent = `reconnecting in ${Math.round(retryMs / 1000)} s`;
    }
    if (controller === mine && !stopped && !paused) {
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    }
  }

  api.get('/v1/events/topics').then(
    ({ topics = [], nextOffset: next = 0 }) => {
      lastSeen = Number(next) - 1;
      nextOffset = Math.max(1, Number(next) - HISTORY);
      for (const t of topics) {
        const box = h('input', { type: 'checkbox', id: uid('topic'), value: t.name, checked: true });
        box.addEventListener('change', () => {
          // Another set of topics: start over with their recent history.
          clear(list);
          nextOffset = Math.max(1, lastSeen - HISTORY);
          connect();
        });
        topicsHost.append(h('div', { class: 'field check' }, box, h('label', { for: box.id }, `${t.name} (${t.retained} kept)`)));
      }
      connect();
    },
    (err) => {
      errorHost.append(errorBox(err, 'list event topics'));
      connect();
    },
  );

  const element = h('div', { class: 'events' }, topicsHost, h('div', { class: 'pager' }, pause, clearBtn, state), errorHost, list);
  return {
    element,
    stop() {
      stopped = true;
      disconnect();
    },
  };
}
