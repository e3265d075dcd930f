// Batches: many prompts at half price through the server's POST /batches (docs/batches.md).
// The page submits one prompt a line, then follows the batch with GET /batches/{id}
// (reads of a batch do not use the per-minute budget) until it ends, and shows each
// item's outcome with its image.

import { ApiError, call, imageById } from './api.js';
import { clearError, el, showError } from './ui.js';

const FIRST_POLL_MS = 1000;
const MAX_POLL_MS = 10000;

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function countsText(batch) {
  const c = batch.counts || {};
  const parts = ['succeeded', 'blocked', 'no_image', 'failed', 'cancelled', 'expired', 'pending']
    .filter((k) => c[k])
    .map((k) => `${c[k]} ${k.replace('_', ' ')}`);
  return `${batch.state}: ${c.total} items${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

export function mountBatches() {
  const section = document.getElementById('tool-batches');
  const form = section.querySelector('form');
  const errorBox = section.querySelector('[data-error]');
  const state = section.querySelector('[data-batch-state]');
  const list = section.querySelector('[data-batch-items]');
  const history = section.querySelector('[data-batch-list]');
  const cancel = section.querySelector('[data-batch-cancel]');
  let current = null;

  const showItems = async (batch) => {
    const rows = (batch.items || []).map((item) => {
      const row = el('li', { 'data-status': item.status },
        el('span', { class: 'batch-index' }, `#${item.index}`), ' ', item.status);
      if (item.error) row.append(' — ', item.error.message || item.error.error);
      if (item.image_ids && item.image_ids.length) {
        const img = el('img', { alt: `Item ${item.index}`, width: '96' });
        row.append(' ', img);
        imageById(item.image_ids[0]).then(({ url }) => { img.src = url; }).catch(() => {});
      }
      return row;
    });
    list.replaceChildren(...rows);
  };

  async function follow(id) {
    current = id;
    cancel.hidden = false;
    let delay = FIRST_POLL_MS;
    for (;;) {
      if (current !== id) return;
      let batch;
      try {
        batch = await call(`/batches/${encodeURIComponent(id)}?limit=1000`);
      } catch (error) {
        showError(errorBox, error);
        return;
      }
      state.textContent = countsText(batch);
      if (batch.finished_at) {
        cancel.hidden = true;
        await showItems(batch);
        document.dispatchEvent(new CustomEvent('imagegate:spent'));
        return;
      }
      await sleep(delay);
      delay = Math.min(delay * 2, MAX_POLL_MS);
    }
  }

  async function refreshList() {
    try {
      const { batches } = await call('/batches?limit=10');
      history.replaceChildren(...batches.map((b) => {
        const open = el('button', { type: 'button', class: 'link' }, b.display_name || b.batch_id);
        open.addEventListener('click', () => { clearError(errorBox); follow(b.batch_id); });
        return el('li', {}, open, ` ${countsText(b)}`);
      }));
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) showError(errorBox, error);
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(errorBox, form);
    const data = new FormData(form);
    const prompts = String(data.get('prompts') || '').split('\n')
      .map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
    if (!prompts.length) {
      errorBox.append(el('p', { text: 'Type at least one prompt, one a line.' }));
      return;
    }
    const body = { items: prompts.map((prompt) => ({ prompt })) };
    const name = String(data.get('display_name') || '').trim();
    if (name) body.display_name = name;
    try {
      const accepted = await call('/batches', { method: 'POST', json: body });
      list.replaceChildren();
      state.textContent = countsText(accepted);
      refreshList();
      follow(accepted.batch_id);
    } catch (error) {
      showError(errorBox, error, form);
    }
  });

  cancel.addEventListener('click', async () => {
    if (!current) return;
    try {
      const batch = await call(`/batches/${encodeURIComponent(current)}/cancel`, { method: 'POST' });
      state.textContent = countsText(batch);
    } catch (error) {
      showError(errorBox, error);
    }
  });

  return { shown() { refreshList(); } };
}
