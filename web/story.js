// Story: a grid with one card per step, filled in as steps finish.
//
// POST /story/generate answers only when every step is done, and its async status
// (GET /requests/{id}) says queued, running or finished, not which step is done. So:
// - "Step by step": the page runs the story itself as turns of one chat session — what
//   /story/generate does on the server, with the same step prompts — so each card fills
//   the moment its step's turn returns.
// - "One request": POST /story/generate; the cards wait together and fill at the end.
// - "One request in the background": the same with `async`, polled; it survives a reload.

import { ApiError, announceSpend, call, imagesOf } from './api.js';
import { cancelJob, submitInBackground, waitForJob } from './jobs.js';
import { mountOptions } from './options.js';
import {
  announce, clearError, el, extension, formatCost, setLatest, showError, startProgress,
} from './ui.js';

/** The server's step prompts (src/generation/story.rs `step_prompt`), word for word. */
export function stepPrompt({ kind, steps, description, style }, step) {
  if (step === 1) {
    const styleLine = style ? `\nVisual style for every step: ${style}.` : '';
    return `We are making ${kind}, in ${steps} steps, about: ${description}${styleLine}\n`
      + 'Keep the same characters, setting, objects and visual style in every step.\n\n'
      + `Now create step 1 of ${steps}: generate its image, and write a one-sentence caption for it.`;
  }
  return `Now create step ${step} of ${steps}, continuing from the previous step with the same characters, `
    + 'setting and style. Generate its image and write a one-sentence caption for it.';
}

function card(index, total) {
  return el('li', { class: 'story-step waiting', 'data-step': String(index) },
    el('div', { class: 'placeholder', role: 'img', 'aria-label': `Step ${index} of ${total}, not made yet` }),
    el('p', { class: 'caption', text: `Step ${index} — waiting` }));
}

function fill(item, index, image, caption) {
  item.classList.remove('waiting', 'working');
  item.dataset.filledAt = String(performance.now());
  item.replaceChildren(
    el('img', { src: image.url, alt: `Step ${index}: ${caption}` }),
    el('p', { class: 'caption' }, el('strong', { text: `${index}. ` }), caption),
    el('a', { href: image.url, download: `${image.id}.${extension(image.mime)}`, class: 'download' }, `Download step ${index}`),
  );
}

export function mountStory(catalog) {
  const section = document.getElementById('tool-story');
  const form = document.getElementById('story-form');
  const grid = section.querySelector('[data-story-grid]');
  const summary = section.querySelector('[data-result]');
  const stop = section.querySelector('[data-story-stop]');
  const errorBox = form.querySelector('[data-error]');
  const options = mountOptions(form.querySelector('[data-options]'), catalog);
  const types = form.elements.content_type;
  types.replaceChildren(...catalog.content_types.map((t) => el('option', { value: t.name }, t.name)));
  form.elements.num_images.min = String(catalog.story_steps.min);
  form.elements.num_images.max = String(catalog.story_steps.max);
  form.elements.num_images.value = String(catalog.story_steps.default);
  let stopRequested = false;
  stop.addEventListener('click', () => {
    stopRequested = true;
    stop.disabled = true;
    announce('The story stops after the step in progress.');
  });

  const request = () => ({
    description: form.elements.description.value,
    num_images: Number(form.elements.num_images.value),
    content_type: types.value,
    style: form.elements.style.value.trim() || undefined,
  });

  // What /story/generate would refuse before any step, refused here in its words, since
  // the chat turns below cannot know about a story's fields.
  function checkStepwise(req, kind) {
    const { min, max } = catalog.story_steps;
    const refuse = (field, message) => new ApiError(400, { error: 'invalid_request', message, details: { field } });
    if (!Number.isInteger(req.num_images) || req.num_images < min || req.num_images > max) {
      return refuse('num_images', `num_images must be between ${min} and ${max}.`);
    }
    if (!req.description.trim()) return refuse('description', 'The description must not be empty.');
    const first = stepPrompt({ kind, steps: req.num_images, description: req.description, style: req.style }, 1);
    const limit = catalog.limits.max_prompt_chars;
    if ([...first].length > limit) {
      return refuse('description', `Step by step, the description and style share the ${limit}-character message `
        + 'limit with the step instructions: shorten them, or choose One request.');
    }
    return null;
  }

  async function runSteps(req, progress, cards) {
    const chosen = options.read();
    const kind = (catalog.content_types.find((t) => t.name === req.content_type) || {}).description || req.content_type;
    const refused = checkStepwise(req, kind);
    if (refused) throw refused;
    const session = await call('/chat/create', { method: 'POST', json: chosen.model ? { model: chosen.model } : {} });
    const turnOptions = { ...chosen };
    delete turnOptions.model;
    let cost = 0;
    let done = 0;
    let model = session.model;
    try {
      for (let step = 1; step <= req.num_images; step += 1) {
        if (stopRequested) break;
        progress.update(`Step ${step} of ${req.num_images}…`, (step - 1) / req.num_images);
        cards[step - 1].classList.add('working');
        cards[step - 1].querySelector('.caption').textContent = `Step ${step} — in progress`;
        const message = stepPrompt({ kind, steps: req.num_images, description: req.description, style: req.style }, step);
        let response;
        try {
          response = await call(`/chat/${encodeURIComponent(session.session_id)}/message`, {
            method: 'POST', json: { message, ...turnOptions },
          });
        } catch (error) {
          // As /story/generate does: the step that failed is named.
          error.message = `Step ${step} failed: ${error.message}`;
          throw error;
        }
        const [image] = imagesOf(response);
        const caption = (response.text || '').trim() || `Step ${step}`;
        fill(cards[step - 1], step, image, caption);
        setLatest(image);
        announce(`Step ${step} of ${req.num_images} finished.`);
        cost += Number((response.usage || {}).cost_usd) || 0;
        model = response.model;
        done = step;
        announceSpend();
      }
    } finally {
      // The session was only the story's context; its images stay in the gallery.
      call(`/chat/${encodeURIComponent(session.session_id)}`, { method: 'DELETE' }).catch(() => {});
    }
    return { done, cost, model };
  }

  // The whole story in one request; in the background, submitted with `async` and
  // polled (or, with `resumeId`, picked up again after a reload).
  async function runWhole(req, progress, cards, background, resumeId) {
    cards.forEach((c) => c.classList.add('working'));
    let response;
    if (background) {
      const id = resumeId || await submitInBackground('tool-story', { path: '/story/generate', json: { ...req, ...options.read() } });
      progress.update(`Queued (${id})…`);
      const cancel = progress.action('Cancel', () => cancelJob(id).catch((e) => showError(errorBox, e, form)));
      response = await waitForJob(id, (status) => {
        if (status === 'running') cancel.remove();
        progress.update(`${status === 'running' ? 'Running' : 'Queued'}: all steps arrive together (${id})…`);
      });
    } else {
      progress.update(`Waiting for all ${req.num_images} steps (one request)…`);
      response = await call('/story/generate', { method: 'POST', json: { ...req, ...options.read() } });
    }
    if (resumeId) {
      grid.replaceChildren(...response.steps.map((_, i) => card(i + 1, response.steps.length)));
      cards.splice(0, cards.length, ...grid.children);
    }
    const images = imagesOf(response);
    response.steps.forEach((step, i) => fill(cards[i], step.index, images[i], step.caption));
    if (images.length) setLatest(images[images.length - 1]);
    announceSpend();
    return { done: response.steps.length, cost: (response.usage || {}).cost_usd, model: response.model };
  }

  async function run(resumeId) {
    clearError(errorBox, form);
    const req = request();
    const mode = resumeId ? 'background' : form.elements.mode.value;
    const stepwise = mode === 'steps';
    // A resumed story's size is known only from its result.
    const valid = Number.isInteger(req.num_images) && req.num_images > 0 && req.num_images <= 10;
    const total = !resumeId && valid ? req.num_images : 0;
    const cards = Array.from({ length: total }, (_, i) => card(i + 1, total));
    grid.replaceChildren(...cards);
    summary.replaceChildren();
    stopRequested = false;
    stop.hidden = !stepwise;
    stop.disabled = false;
    const progress = startProgress(form, 'Story');
    try {
      const result = stepwise
        ? await runSteps(req, progress, cards)
        : await runWhole(req, progress, cards, mode === 'background', resumeId);
      const asked = resumeId ? result.done : req.num_images;
      summary.replaceChildren(el('p', { class: 'meta', text:
        `${result.done} of ${asked} steps · model ${result.model} · ${formatCost(result.cost)}`
        + `${result.done < asked ? ' · stopped early' : ''}` }));
      announce(`Story finished: ${result.done} steps.`);
    } catch (error) {
      showError(errorBox, error, form);
      announce('The story failed.');
    } finally {
      cards.filter((c) => !c.dataset.filledAt).forEach((c) => {
        c.classList.remove('working');
        c.querySelector('.caption').textContent = `Step ${c.dataset.step} — not made`;
      });
      stop.hidden = true;
      progress.done();
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    run();
  });
  return {
    /** Picks up a background story after a reload (see jobs.js). */
    resume(job) {
      if (job.tool !== 'tool-story') return false;
      run(job.id);
      return true;
    },
  };
}
