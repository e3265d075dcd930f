// The playground's entry point: the key, the tool switcher (one section per URL hash,
// so the back button and links work), and the catalog that fills every choice.

import { ApiError, keyStore } from './api.js';
import { mountBatches } from './batches.js';
import { mountChat } from './chat.js';
import { mountTools } from './forms.js';
import { mountGallery } from './gallery.js';
import { pendingJobs } from './jobs.js';
import { mountStory } from './story.js';
import { clearError, el, showError } from './ui.js';
import { mountUsage } from './usage.js';

const TOOLS = ['generate', 'edit', 'compose', 'inpaint', 'outpaint', 'style', 'chat', 'story', 'batches', 'gallery', 'usage'];

function describeKey(key) {
  return key ? `A key is saved in this browser (${key.slice(0, 8)}…).` : 'No key saved yet.';
}

function mountKey(usage, chat, gallery) {
  const form = document.getElementById('key-form');
  const input = document.getElementById('key-input');
  const state = document.getElementById('key-state');
  const errorBox = document.getElementById('key-error');
  state.textContent = describeKey(keyStore.get());
  if (keyStore.get()) input.placeholder = 'Saved (type to replace)';

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(errorBox, form);
    const key = input.value.trim();
    if (!key) {
      errorBox.append(el('p', { text: 'Type or paste an API key first.' }));
      input.focus();
      return;
    }
    const previous = keyStore.get();
    keyStore.set(key);
    try {
      // Checked with a real call, so a wrong key is reported now, in the server's words.
      await usage.refresh();
      input.value = '';
      input.placeholder = 'Saved (type to replace)';
      state.textContent = `Key saved. ${describeKey(key)}`;
      gallery.forget();
      chat.restore();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        if (previous) keyStore.set(previous); else keyStore.clear();
        state.textContent = `That key was not saved. ${describeKey(keyStore.get())}`;
      }
      showError(errorBox, error, form);
      input.focus();
    }
  });

  document.getElementById('key-forget').addEventListener('click', () => {
    keyStore.clear();
    input.placeholder = '';
    state.textContent = 'Key forgotten. No key saved yet.';
    usage.forget();
    gallery.forget();
  });
}

function route(views, moveFocus) {
  const wanted = location.hash.slice(1);
  const tool = TOOLS.includes(wanted) ? wanted : 'generate';
  for (const name of TOOLS) {
    document.getElementById(`tool-${name}`).hidden = name !== tool;
  }
  document.querySelectorAll('nav.tools a').forEach((link) => {
    if (link.getAttribute('href') === `#${tool}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  });
  // After choosing a tool, keyboard users land on its heading, not back at the top.
  if (moveFocus) document.getElementById(`${tool}-title`).focus();
  if (views[tool]) views[tool].shown();
}

async function loadCatalog() {
  const response = await fetch('/playground/catalog.json', { cache: 'no-store' });
  if (!response.ok) throw new Error(`the catalog answered ${response.status}`);
  return response.json();
}

async function start() {
  let catalog;
  try {
    catalog = await loadCatalog();
  } catch (error) {
    showError(document.getElementById('key-error'), error);
    return;
  }
  const tools = mountTools(catalog);
  const chat = mountChat(catalog);
  const story = mountStory(catalog);
  const gallery = mountGallery();
  const batches = mountBatches();
  const usage = mountUsage();
  mountKey(usage, chat, gallery);
  const views = { gallery, usage, batches };
  window.addEventListener('hashchange', () => route(views, true));
  route(views, false);
  if (keyStore.get()) {
    usage.refresh().catch(() => {});
    chat.restore();
    // Background work started before a reload: the server kept it, the page waits again.
    for (const job of pendingJobs()) {
      if (!tools.resume(job)) story.resume(job);
    }
  }
  document.body.dataset.ready = 'true';
}

start();
