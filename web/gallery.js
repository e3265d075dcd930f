// Gallery: GET /images lists the key's recent images (ids and URLs, no bytes); each
// preview's bytes are then fetched with the key, two at a time, because every fetch
// counts against the key's per-minute and in-flight limits. Images this page made
// itself are shown from memory.

import { ApiError, call, imageById } from './api.js';
import { clearError, el, extension, showError } from './ui.js';

const LIMIT = 24;
const PARALLEL = 2;

function describe(item) {
  const when = new Date(item.created_at);
  return `${when.toLocaleString()} · ${Math.round(item.size_bytes / 1024)} KB`;
}

export function mountGallery() {
  const section = document.getElementById('tool-gallery');
  const list = section.querySelector('[data-gallery]');
  const state = section.querySelector('[data-gallery-state]');
  const errorBox = section.querySelector('[data-error]');
  let loaded = false;

  const preview = async (item, figure) => {
    const img = figure.querySelector('img');
    try {
      const { url } = await imageById(item.image_id);
      img.src = url;
      figure.querySelector('figcaption').append(' ',
        el('a', { href: url, download: `${item.image_id}.${extension(item.mime_type)}` }, 'Download'));
    } catch (error) {
      const why = error instanceof ApiError ? error.message : 'It could not be loaded.';
      const retry = el('button', { type: 'button', class: 'link' }, 'Retry');
      const note = el('p', { class: 'error-inline' }, `Preview not loaded: ${why} `, retry);
      retry.addEventListener('click', () => { note.remove(); preview(item, figure); });
      figure.append(note);
    }
  };

  async function refresh() {
    clearError(errorBox);
    state.textContent = 'Loading…';
    try {
      const listing = await call(`/images?limit=${LIMIT}`);
      const figures = listing.images.map((item) => el('li', {},
        el('figure', { class: 'gallery-item', 'data-image-id': item.image_id },
          el('img', { alt: `Image ${item.image_id}, made ${new Date(item.created_at).toLocaleString()}` }),
          el('figcaption', {}, describe(item)))));
      list.replaceChildren(...figures);
      state.textContent = listing.images.length
        ? `The ${listing.images.length} most recent images of this key, newest first.`
        : 'No images yet: make one with any tool.';
      loaded = true;
      const queue = listing.images.map((item, i) => [item, figures[i].firstChild]);
      const worker = async () => {
        while (queue.length) {
          const [item, figure] = queue.shift();
          await preview(item, figure);
        }
      };
      await Promise.all(Array.from({ length: PARALLEL }, worker));
    } catch (error) {
      state.textContent = '';
      showError(errorBox, error);
    }
  }

  section.querySelector('[data-gallery-refresh]').addEventListener('click', refresh);
  // New images appear the next time the gallery is opened, not while it is elsewhere.
  document.addEventListener('imagegate:spent', () => { loaded = false; });
  return {
    shown() { if (!loaded) refresh(); },
    forget() { list.replaceChildren(); loaded = false; state.textContent = ''; },
  };
}
