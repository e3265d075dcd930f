// Shared page pieces: element building, error and progress display, the "running" list,
// result rendering and the image picker.

import { ApiError, NoKeyError, imagesOf } from './api.js';

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function announce(text) {
  const region = document.getElementById('announce');
  region.textContent = '';
  // A fresh text node after a tick, so screen readers announce repeats too.
  setTimeout(() => { region.textContent = text; }, 50);
}

export function formatCost(usd) {
  const n = Number(usd) || 0;
  return `$${n.toFixed(n >= 0.1 || n === 0 ? 2 : 4)}`;
}

/** Shows the contract's message; marks and focuses the field `details.field` names. */
export function showError(box, error, form) {
  clearError(box, form);
  if (error instanceof NoKeyError) {
    box.append(el('p', { text: error.message }));
    document.getElementById('key-input').focus();
    return;
  }
  const api = error instanceof ApiError ? error : null;
  box.append(el('p', { class: 'message', text: api ? error.message : `Something went wrong in the page: ${error.message}` }));
  if (api) {
    const bits = [api.code, api.status ? `HTTP ${api.status}` : null, api.requestId ? `request ${api.requestId}` : null];
    box.append(el('p', { class: 'meta', text: bits.filter(Boolean).join(' · ') }));
    if (api.details && api.details.retry_after_seconds) {
      box.append(el('p', { class: 'meta', text: `Try again in ${api.details.retry_after_seconds} s.` }));
    }
    const field = api.details && api.details.field;
    const control = field && form ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
    if (control) {
      control.setAttribute('aria-invalid', 'true');
      control.focus();
    }
  }
}

export function clearError(box, form) {
  box.replaceChildren();
  if (form) form.querySelectorAll('[aria-invalid]').forEach((c) => c.removeAttribute('aria-invalid'));
}

// The "Running" list: work goes on while the user moves to another tool.
export function trackJob(label) {
  const list = document.getElementById('jobs-list');
  const aside = list.closest('aside');
  const item = el('li', { text: label });
  list.append(item);
  aside.hidden = false;
  return {
    update(text) { item.textContent = `${label}: ${text}`; },
    done() {
      item.remove();
      aside.hidden = list.children.length === 0;
    },
  };
}

/**
 * Progress under a form: a bar (indeterminate unless a fraction is given), elapsed
 * seconds, the submit button disabled, and an entry in the "Running" list.
 */
export function startProgress(form, label) {
  const box = form.querySelector('[data-progress]');
  const submit = form.querySelector('button[type="submit"]');
  const bar = el('progress', { max: '1', 'aria-label': `${label} progress` });
  const text = el('span', { class: 'progress-text', role: 'status' });
  box.replaceChildren(bar, text);
  submit.disabled = true;
  form.setAttribute('aria-busy', 'true');
  const job = trackJob(label);
  const started = Date.now();
  let stage = 'Working…';
  const render = () => {
    const secs = Math.round((Date.now() - started) / 1000);
    text.textContent = `${stage} ${secs} s`;
    job.update(`${stage} ${secs} s`);
  };
  render();
  const timer = setInterval(render, 1000);
  return {
    update(newStage, fraction) {
      stage = newStage;
      if (typeof fraction === 'number') bar.value = fraction;
      render();
    },
    /** A button beside the bar (e.g. Cancel); returns it so the caller can remove it. */
    action(label, onClick) {
      const button = el('button', { type: 'button', onclick: onClick }, label);
      box.append(button);
      return button;
    },
    done() {
      clearInterval(timer);
      box.replaceChildren();
      submit.disabled = false;
      form.removeAttribute('aria-busy');
      job.done();
    },
  };
}

// The latest image the page received, for "Use the latest result" in the pickers.
let latest = null;
export function setLatest(image) {
  latest = image;
  document.dispatchEvent(new CustomEvent('imagegate:latest'));
}

export function extension(mime) {
  return mime === 'image/jpeg' ? 'jpg' : (mime || '').split('/')[1] || 'png';
}

function describeSize(img) {
  return img.naturalWidth ? `${img.naturalWidth}×${img.naturalHeight}` : '';
}

/** A generation response: each image with a download link, then model, cost and words. */
export function renderGeneration(container, response, title) {
  const images = imagesOf(response);
  const figures = images.map((image, i) => {
    const img = el('img', { src: image.url, alt: `${title} result${images.length > 1 ? ` ${i + 1}` : ''}` });
    const size = el('span', { class: 'size' });
    img.addEventListener('load', () => { size.textContent = describeSize(img); });
    return el('figure', { class: 'result-figure' }, img,
      el('figcaption', {}, size, ' ',
        el('a', { href: image.url, download: `${image.id}.${extension(image.mime)}` }, 'Download'),
        ' ', el('code', { text: image.id })));
  });
  const usage = response.usage || {};
  const meta = el('p', { class: 'meta' },
    `Model ${response.model} · ${formatCost(usage.cost_usd)} · ${usage.output_tokens ?? 0} output tokens`
    + `${response.cached ? ' · cached' : ''} · request ${response.request_id}`);
  const words = response.text ? el('p', { class: 'model-text', text: response.text }) : null;
  container.replaceChildren(...figures, meta, words);
  if (images[0]) setLatest(images[0]);
  return images;
}

/**
 * An image input: a file chooser plus "Use the latest result", with previews.
 * `blobs()` gives what will be sent, in order.
 */
export function mountPicker(holder, idPrefix) {
  const field = holder.dataset.picker;
  const max = Number(holder.dataset.multiple || 1);
  const inputId = `${idPrefix}-${field}`;
  const chosen = [];
  const input = el('input', { id: inputId, type: 'file', name: field, accept: 'image/png,image/jpeg,image/webp', multiple: max > 1 || null });
  const useLatest = el('button', { type: 'button', disabled: !latest }, max > 1 ? 'Add the latest result' : 'Use the latest result');
  const previews = el('ul', { class: 'picks', 'aria-label': `${holder.dataset.label}: chosen` });
  const listeners = [];
  const changed = () => {
    previews.replaceChildren(...chosen.map((pick, i) => el('li', {},
      el('img', { src: pick.url, alt: pick.name }),
      el('span', { class: 'pick-name', title: pick.name, text: pick.name }),
      el('button', {
        type: 'button', class: 'link', 'aria-label': `Remove ${pick.name}`,
        onclick: () => { chosen.splice(i, 1); changed(); },
      }, 'Remove'))));
    listeners.forEach((f) => f(chosen));
  };
  const add = (blob, name) => {
    if (max === 1) chosen.splice(0, chosen.length);
    if (chosen.length >= max) chosen.shift();
    chosen.push({ blob, name, url: URL.createObjectURL(blob) });
  };
  input.addEventListener('change', () => {
    for (const file of input.files) add(file, file.name);
    input.value = '';
    changed();
  });
  useLatest.addEventListener('click', () => {
    if (!latest) return;
    add(latest.blob, `${latest.id}.${extension(latest.mime)}`);
    changed();
  });
  document.addEventListener('imagegate:latest', () => { useLatest.disabled = !latest; });
  holder.classList.add('picker');
  holder.replaceChildren(
    el('label', { for: inputId, text: holder.dataset.label }),
    el('div', { class: 'row' }, input, useLatest),
    previews,
  );
  return {
    blobs: () => chosen.map((c) => ({ blob: c.blob, name: c.name })),
    onChange: (f) => listeners.push(f),
    input,
  };
}

/** Range inputs with a `data-output` show their value as they move. */
export function bindRangeOutputs(root) {
  root.querySelectorAll('input[type="range"][data-output]').forEach((range) => {
    const out = document.getElementById(range.dataset.output);
    const show = () => { out.textContent = range.value; };
    range.addEventListener('input', show);
    show();
  });
}
