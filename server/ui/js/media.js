// Ingested files shown from the server's copy (`GET /v1/collections/C/media/SHA`): an
// image thumbnail, a video seeked to a keyframe, audio that plays a matched passage.
// Fetched with the credential and shown through object URLs, one per file per view,
// revoked when the view goes away.

import { ApiError, mediaUrl } from './api.js';
import { h } from './dom.js';

export class MediaCache {
  constructor(collection) {
    this.collection = collection;
    this.urls = new Map();
    this.controller = new AbortController();
    this.active = 0;
    this.waiting = [];
  }

  // At most four downloads at once, so a page of thumbnails does not flood the server.
  async slot(fn) {
    if (this.active >= 4) await new Promise((resolve) => this.waiting.push(resolve));
    this.active += 1;
    try {
      return await fn();
    } finally {
      this.active -= 1;
      const next = this.waiting.shift();
      if (next) next();
    }
  }

  url(sha256) {
    if (!this.urls.has(sha256)) {
      this.urls.set(sha256, this.slot(() => mediaUrl(this.collection, sha256, this.controller.signal)));
    }
    return this.urls.get(sha256);
  }

  dispose() {
    this.controller.abort();
    for (const pending of this.urls.values()) {
      pending.then((u) => URL.revokeObjectURL(u), () => {});
    }
    this.urls.clear();
  }
}

function unavailable(err) {
  const why = err instanceof ApiError && err.status === 404 ? 'original not kept by the server' : `media unavailable: ${err.message}`;
  return h('span', { class: 'muted media-missing' }, why);
}

// An element for an ingested item's media, filled in when the bytes arrive; null when
// the item has no file behind it (plain text chunks, upserted items).
export function mediaElement(cache, payload, { alt = '' } = {}) {
  if (!payload || !payload.content_sha256) return null;
  const modality = payload.modality || '';
  const sha = payload.content_sha256;
  const mediaType = String(payload.media_type || '');
  const holder = h('div', { class: 'media', dataset: { sha256: sha, modality } });
  if (modality === 'image' || (mediaType.startsWith('image/') && modality !== 'text')) {
    const img = h('img', { alt: alt || `image ${payload.source || ''}`, class: 'thumb', dataset: { sha256: sha } });
    holder.append(img);
    cache.url(sha).then(
      (u) => {
        img.src = u;
      },
      (err) => holder.replaceChildren(unavailable(err)),
    );
    return holder;
  }
  const start = Number(payload.t_s ?? payload.start_s ?? 0) || 0;
  const end = Number(payload.end_s ?? 0) || 0;
  const range = end > start ? `${start.toFixed(1)}–${end.toFixed(1)} s` : `${start.toFixed(1)} s`;
  if (modality === 'keyframe' || mediaType.startsWith('video/')) {
    const what = modality === 'keyframe' ? `keyframe at ${range}` : `${modality || 'video'} ${range}`;
    const video = h('video', { controls: true, preload: 'metadata', 'aria-label': `${payload.source || 'video'}, ${what}`, dataset: { start: String(start), end: String(end) } });
    holder.append(video, h('small', { class: 'muted' }, what));
    cache.url(sha).then((u) => playRange(video, u, start, end), (err) => holder.replaceChildren(unavailable(err)));
    return holder;
  }
  if (modality === 'speech' || modality === 'sound' || mediaType.startsWith('audio/')) {
    const audio = h('audio', { controls: true, preload: 'metadata', 'aria-label': `${payload.source || 'audio'}, matched ${range}`, dataset: { start: String(start), end: String(end) } });
    holder.append(audio, h('small', { class: 'muted' }, `matched ${range}`));
    cache.url(sha).then((u) => playRange(audio, u, start, end), (err) => holder.replaceChildren(unavailable(err)));
    return holder;
  }
  return null;
}

// Seek to the matched moment once the element knows its duration; when the match has
// an end, the first play stops there.
function playRange(el, url, start, end) {
  el.addEventListener('loadedmetadata', () => {
    el.currentTime = Number.isFinite(el.duration) ? Math.min(start, el.duration) : start;
  }, { once: true });
  if (end > start) {
    let stopped = false;
    el.addEventListener('timeupdate', () => {
      if (!stopped && el.currentTime >= end) {
        stopped = true;
        el.pause();
      }
    });
  }
  el.src = url;
}
