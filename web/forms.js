// The one-request tools: generate, edit, compose, inpaint, outpaint and style transfer.
// Validation is the server's: whatever it refuses comes back as the contract's message,
// shown under the form with the named field marked.

import { announceSpend, call } from './api.js';
import { cancelJob, submitInBackground, waitForJob } from './jobs.js';
import { mountPainter } from './mask.js';
import { appendOptions, mountOptions } from './options.js';
import {
  announce, bindRangeOutputs, clearError, el, mountPicker, renderGeneration, showError, startProgress,
} from './ui.js';

/**
 * Runs one request for a tool section, with progress, errors and the result shown.
 * `build` gives { path, json } or { path, form }. With the form's "background" box
 * ticked the request goes with `async` and is polled; `resumeId` picks up such a
 * request after a reload.
 */
export async function runTool(section, label, build, resumeId) {
  const form = section.querySelector('form.tool-form');
  const errorBox = form.querySelector('[data-error]');
  const background = form.elements.namedItem('async');
  clearError(errorBox, form);
  const progress = startProgress(form, label);
  try {
    let response;
    if (resumeId || (background && background.checked)) {
      const id = resumeId || await submitInBackground(section.id, await build());
      progress.update(`Queued (${id})…`);
      const cancel = progress.action('Cancel', () => cancelJob(id).catch((e) => showError(errorBox, e, form)));
      response = await waitForJob(id, (status) => {
        if (status === 'running') cancel.remove();
        progress.update(`${status === 'running' ? 'Running' : 'Queued'} (${id})…`);
      });
    } else {
      const request = await build();
      response = await call(request.path, { method: 'POST', json: request.json, form: request.form });
    }
    renderGeneration(section.querySelector('[data-result]'), response, label);
    announce(`${label} finished.`);
    announceSpend();
  } catch (error) {
    showError(errorBox, error, form);
    announce(`${label} failed.`);
  } finally {
    progress.done();
  }
}

function addFiles(form, field, picks) {
  for (const { blob, name } of picks) form.append(field, blob, name);
}

function text(form, name) {
  return form.elements[name].value;
}

function setUp(id) {
  const section = document.getElementById(`tool-${id}`);
  const form = section.querySelector('form.tool-form');
  bindRangeOutputs(form);
  const pickers = {};
  form.querySelectorAll('[data-picker]').forEach((holder) => {
    pickers[holder.dataset.picker] = mountPicker(holder, id);
  });
  const submit = (handler) => form.addEventListener('submit', (event) => {
    event.preventDefault();
    handler();
  });
  return { section, form, pickers, submit };
}

const LABELS = {
  'tool-generate': 'Generate',
  'tool-edit': 'Edit',
  'tool-compose': 'Compose',
  'tool-inpaint': 'Inpaint',
  'tool-outpaint': 'Outpaint',
  'tool-style': 'Style transfer',
};

export function mountTools(catalog) {
  mountGenerate(catalog);
  mountEdit(catalog);
  mountCompose(catalog);
  mountInpaint();
  mountOutpaint();
  mountStyle(catalog);
  return {
    /** Picks up a background request of one of these tools (see jobs.js). */
    resume(job) {
      if (!LABELS[job.tool]) return false;
      runTool(document.getElementById(job.tool), LABELS[job.tool], null, job.id);
      return true;
    },
  };
}

function mountGenerate(catalog) {
  const { section, form, submit } = setUp('generate');
  const options = mountOptions(form.querySelector('[data-options]'), catalog);
  submit(() => runTool(section, LABELS[section.id], () => ({
    path: '/generate-image', json: { prompt: text(form, 'prompt'), ...options.read() },
  })));
}

function mountEdit(catalog) {
  const { section, form, pickers, submit } = setUp('edit');
  const options = mountOptions(form.querySelector('[data-options]'), catalog);
  submit(() => runTool(section, LABELS[section.id], () => {
    const body = new FormData();
    addFiles(body, 'image', pickers.image.blobs());
    body.append('prompt', text(form, 'prompt'));
    body.append('preserve_subject', String(form.elements.preserve_subject.checked));
    body.append('edit_strength', text(form, 'edit_strength'));
    appendOptions(body, options.read());
    return { path: '/edit-image', form: body };
  }));
}

function mountCompose(catalog) {
  const { section, form, pickers, submit } = setUp('compose');
  const style = form.elements.composition_style;
  style.replaceChildren(...catalog.composition_styles.map((name) => el('option', {
    value: name, selected: name === catalog.default_composition_style || null,
  }, name.replace(/_/g, ' '))));
  const options = mountOptions(form.querySelector('[data-options]'), catalog);
  submit(() => runTool(section, LABELS[section.id], () => {
    const body = new FormData();
    addFiles(body, 'images', pickers.images.blobs());
    body.append('prompt', text(form, 'prompt'));
    body.append('composition_style', style.value);
    appendOptions(body, options.read());
    return { path: '/compose-images', form: body };
  }));
}

function mountInpaint() {
  const { section, form, pickers, submit } = setUp('inpaint');
  const painter = mountPainter(form.querySelector('[data-painter]'));
  pickers.image.onChange((chosen) => painter.load(chosen[0] ? chosen[0].blob : null));
  submit(() => runTool(section, LABELS[section.id], async () => {
    const body = new FormData();
    addFiles(body, 'image', pickers.image.blobs());
    body.append('prompt', text(form, 'prompt'));
    body.append('region_description', text(form, 'region_description'));
    // Without paint there is no mask: the region description alone says where.
    const mask = await painter.maskPng();
    if (mask) body.append('mask', mask, 'mask.png');
    return { path: '/advanced/inpaint', form: body };
  }));
}

function mountOutpaint() {
  const { section, form, pickers, submit } = setUp('outpaint');
  submit(() => runTool(section, LABELS[section.id], () => {
    const body = new FormData();
    addFiles(body, 'image', pickers.image.blobs());
    body.append('prompt', text(form, 'prompt'));
    // Repeated fields, as the contract allows; none ticked sends none (the server's
    // default is all four).
    form.querySelectorAll('input[name="direction"]:checked').forEach((box) => body.append('direction', box.value));
    body.append('extension_ratio', text(form, 'extension_ratio'));
    return { path: '/advanced/outpaint', form: body };
  }));
}

function mountStyle(catalog) {
  const { section, form, pickers, submit } = setUp('style');
  const preset = form.elements.namedItem('style');
  preset.replaceChildren(
    ...catalog.styles.map((s) => el('option', { value: s.name }, `${s.label} (${s.name})`)),
    el('option', { value: '' }, 'Your own words…'),
  );
  const custom = section.querySelector('[data-custom-style]');
  preset.addEventListener('change', () => { custom.hidden = preset.value !== ''; });
  submit(() => runTool(section, LABELS[section.id], () => {
    const body = new FormData();
    addFiles(body, 'image', pickers.image.blobs());
    body.append('style', preset.value || text(form, 'custom_style'));
    body.append('style_strength', text(form, 'style_strength'));
    body.append('preserve_content', String(form.elements.preserve_content.checked));
    return { path: '/advanced/style-transfer', form: body };
  }));
}
