// Chat: a conversation view where each model turn shows its image. The session id is
// kept in this browser so a reload shows the conversation again (from GET /chat/{id},
// which lists image ids; their bytes are fetched as they are shown).

import { ApiError, announceSpend, call, imageById } from './api.js';
import { fillModelSelect } from './options.js';
import {
  announce, clearError, el, formatCost, mountPicker, renderGeneration, showError, startProgress,
} from './ui.js';

const SESSION_STORAGE = 'imagegate.chat_session';

export function mountChat(catalog) {
  const section = document.getElementById('tool-chat');
  const form = document.getElementById('chat-form');
  const setup = document.getElementById('chat-setup-form');
  const log = section.querySelector('[data-chat-log]');
  const sessionText = section.querySelector('[data-chat-session]');
  const errorBox = form.querySelector('[data-error]');
  const picker = mountPicker(form.querySelector('[data-picker]'), 'chat');
  fillModelSelect(setup.elements.model, catalog);
  let session = localStorage.getItem(SESSION_STORAGE) || '';

  const setSession = (id, model) => {
    session = id;
    if (id) localStorage.setItem(SESSION_STORAGE, id); else localStorage.removeItem(SESSION_STORAGE);
    sessionText.textContent = id
      ? `Conversation ${id} with ${model}. Each message refines the picture with the whole history in context.`
      : 'No conversation yet: the first message starts one.';
  };

  const create = async () => {
    const body = { model: setup.elements.model.value };
    const system = setup.elements.system_prompt.value.trim();
    if (system) body.system_prompt = system;
    const created = await call('/chat/create', { method: 'POST', json: body });
    log.replaceChildren();
    setSession(created.session_id, created.model);
    return created.session_id;
  };

  const userTurn = (text, imageUrl) => el('li', { class: 'turn user' },
    el('p', { class: 'who', text: 'You' }), el('p', { text }),
    imageUrl ? el('img', { src: imageUrl, alt: 'Image you attached' }) : null);

  setup.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(errorBox, form);
    try {
      await create();
      announce('New conversation started.');
      document.getElementById('chat-message').focus();
    } catch (error) { showError(errorBox, error, setup); }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(errorBox, form);
    const message = form.elements.message.value;
    const attached = picker.blobs()[0];
    const progress = startProgress(form, 'Chat');
    const pending = el('li', { class: 'turn model pending' }, el('p', { class: 'who', text: 'Model' }), el('p', { text: 'Working on it…' }));
    try {
      const id = session || await create();
      let response;
      if (attached) {
        const body = new FormData();
        body.append('message', message);
        body.append('image', attached.blob, attached.name);
        response = call(`/chat/${encodeURIComponent(id)}/message`, { method: 'POST', form: body });
      } else {
        response = call(`/chat/${encodeURIComponent(id)}/message`, { method: 'POST', json: { message } });
      }
      const shown = userTurn(message, attached ? URL.createObjectURL(attached.blob) : null);
      log.append(shown, pending);
      response = await response;
      const figure = el('div', { class: 'turn-result' });
      renderGeneration(figure, response, `Turn ${response.turn}`);
      pending.replaceWith(el('li', { class: 'turn model', 'data-turn': String(response.turn) },
        el('p', { class: 'who', text: `Model · turn ${response.turn} · ${formatCost((response.usage || {}).cost_usd)}` }), figure));
      form.elements.message.value = '';
      announce(`Turn ${response.turn} finished.`);
      announceSpend();
    } catch (error) {
      pending.remove();
      // The model's refusal is not part of the history; the user's words stay for a retry.
      log.lastElementChild?.classList.contains('user') && log.lastElementChild.remove();
      if (error instanceof ApiError && error.status === 404) setSession('', '');
      showError(errorBox, error, form);
    } finally {
      progress.done();
    }
  });

  section.querySelector('[data-chat-end]').addEventListener('click', async () => {
    clearError(errorBox, form);
    const id = session;
    setSession('', '');
    log.replaceChildren();
    if (!id) return;
    try {
      await call(`/chat/${encodeURIComponent(id)}`, { method: 'DELETE' });
      announce('Conversation ended.');
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) showError(errorBox, error, form);
    }
  });

  return {
    /** After a key is known: show the stored conversation again, if it still exists. */
    async restore() {
      if (!session) return;
      try {
        const history = await call(`/chat/${encodeURIComponent(session)}`);
        setSession(history.session_id, history.model);
        log.replaceChildren(...history.turns.map((turn) => {
          const images = turn.images.map((ref) => {
            const img = el('img', { alt: `${turn.role === 'user' ? 'Image you attached' : 'Model image'}, turn ${turn.index}` });
            imageById(ref.image_id).then((got) => { img.src = got.url; }).catch(() => { img.alt += ' (could not be loaded)'; });
            return img;
          });
          return el('li', { class: `turn ${turn.role === 'user' ? 'user' : 'model'}` },
            el('p', { class: 'who', text: turn.role === 'user' ? 'You' : 'Model' }),
            turn.text ? el('p', { text: turn.text }) : null, ...images);
        }));
      } catch {
        setSession('', '');
      }
    },
  };
}
