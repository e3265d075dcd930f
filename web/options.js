// Model and output options (model, aspect ratio, size, temperature, seed), built from
// the server's catalog so the choices are exactly what the server accepts. Empty means
// "the server's default", and is not sent.

import { el } from './ui.js';

function modelLabel(model) {
  return model.retired
    ? `${model.name} (retired ${model.retired.shut_down}; served by ${model.retired.served_by})`
    : model.name;
}

export function fillModelSelect(select, catalog) {
  const active = catalog.models.filter((m) => !m.retired);
  const retired = catalog.models.filter((m) => m.retired);
  select.replaceChildren(
    ...active.map((m) => el('option', { value: m.name, selected: m.name === catalog.default_model || null }, modelLabel(m))),
    retired.length ? el('optgroup', { label: 'Retired names (routed to a successor)' },
      ...retired.map((m) => el('option', { value: m.name }, modelLabel(m)))) : null,
  );
}

function fillChoices(select, values, emptyLabel) {
  const previous = select.value;
  select.replaceChildren(el('option', { value: '' }, emptyLabel), ...values.map((v) => el('option', { value: v }, v)));
  if (values.includes(previous)) select.value = previous;
  select.disabled = values.length === 0;
}

/**
 * Renders the options into `holder` (a `data-options` element) with ids prefixed by
 * its name. Returns read() → an object of the chosen values, unset ones left out.
 */
export function mountOptions(holder, catalog) {
  const p = holder.dataset.options;
  const id = (name) => `${p}-${name}`;
  const model = el('select', { id: id('model'), name: 'model' });
  const ratio = el('select', { id: id('aspect'), name: 'aspect_ratio' });
  const size = el('select', { id: id('size'), name: 'image_size' });
  const temperature = el('input', {
    id: id('temperature'), name: 'temperature', type: 'number', min: '0', max: '2', step: '0.1',
    inputmode: 'decimal', placeholder: 'model default', 'aria-describedby': id('temperature-help'),
  });
  const seed = el('input', { id: id('seed'), name: 'seed', type: 'number', min: '0', step: '1', inputmode: 'numeric', placeholder: 'random' });
  fillModelSelect(model, catalog);
  const sync = () => {
    const entry = catalog.models.find((m) => m.name === model.value) || { aspect_ratios: [], image_sizes: [] };
    fillChoices(ratio, entry.aspect_ratios, 'Default');
    fillChoices(size, entry.image_sizes, entry.image_sizes.length ? 'Default' : 'Fixed by this model');
  };
  model.addEventListener('change', sync);
  sync();
  const field = (label, control, help) => el('div', { class: 'field' },
    el('label', { for: control.id, text: label }), control, help || null);
  const grid = el('div', { class: 'options-grid' },
    field('Model', model),
    field('Aspect ratio', ratio),
    field('Size', size),
    field('Temperature', temperature, el('p', { id: id('temperature-help'), class: 'help', text: '0 to 2; higher is more varied.' })),
    field('Seed', seed));
  if (holder.dataset.open === 'true') {
    holder.replaceChildren(el('fieldset', { class: 'options' }, el('legend', { text: 'Model and output' }), grid));
  } else {
    holder.replaceChildren(el('details', { class: 'options' }, el('summary', { text: 'Model and output options' }), grid));
  }
  return {
    read() {
      const out = {};
      if (model.value) out.model = model.value;
      if (ratio.value) out.aspect_ratio = ratio.value;
      if (size.value) out.image_size = size.value;
      if (temperature.value !== '') out.temperature = Number(temperature.value);
      if (seed.value !== '') out.seed = Number(seed.value);
      return out;
    },
    set(values) {
      if (values.model) { model.value = values.model; sync(); }
      if (values.aspect_ratio) ratio.value = values.aspect_ratio;
      if (values.image_size) size.value = values.image_size;
    },
  };
}

/** Multipart forms take the same options as text fields. */
export function appendOptions(form, options) {
  for (const [name, value] of Object.entries(options)) form.append(name, String(value));
}
