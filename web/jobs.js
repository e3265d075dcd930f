// Work run in the background: the request is sent with `"async": true`, the server
// stores it and answers 202, and the page polls GET /requests/{id} until it is done.
// Pending ids are kept in this browser, so after a reload (or closing the tab) the page
// picks them up again; the server ran them meanwhile.

import { ApiError, call } from './api.js';

const PENDING = 'imagegate.pending';
const FIRST_POLL_MS = 1000;
// Polls count against the key's per-minute limit (15 on the free tier): slow down.
const MAX_POLL_MS = 5000;

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function readPending() {
  try { return JSON.parse(localStorage.getItem(PENDING) || '[]'); } catch { return []; }
}

function writePending(list) {
  localStorage.setItem(PENDING, JSON.stringify(list));
}

/** Background requests this browser started and has not seen finish: [{ id, tool }]. */
export function pendingJobs() {
  return readPending();
}

function forget(id) {
  writePending(readPending().filter((job) => job.id !== id));
}

/** Sends `request` ({ path, json } or { path, form }) with async on; returns its id. */
export async function submitInBackground(tool, request) {
  const init = { method: 'POST' };
  if (request.json) init.json = { ...request.json, async: true };
  if (request.form) {
    request.form.append('async', 'true');
    init.form = request.form;
  }
  const accepted = await call(request.path, init);
  writePending([...readPending(), { id: accepted.request_id, tool }]);
  return accepted.request_id;
}

export function cancelJob(id) {
  return call(`/requests/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
}

/**
 * Polls until the request finishes: its generation response, or its error as ApiError.
 * `onStatus` hears "queued" and "running".
 */
export async function waitForJob(id, onStatus) {
  let delay = FIRST_POLL_MS;
  for (;;) {
    let state;
    try {
      state = await call(`/requests/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 429) {
        await sleep(1000 * (Number(error.details.retry_after_seconds) || 2));
        continue;
      }
      // Unreachable server: keep the id, a reload resumes. Anything else: it is gone.
      if (!(error instanceof ApiError && error.code === 'network_error')) forget(id);
      throw error;
    }
    if (state.status === 'succeeded' || state.status === 'failed' || state.status === 'canceled') {
      forget(id);
    }
    if (state.status === 'succeeded') return state.result;
    if (state.status === 'failed') throw new ApiError(0, state.error, id);
    if (state.status === 'canceled') {
      throw new ApiError(0, { error: 'canceled', message: 'The request was canceled before it ran.' }, id);
    }
    onStatus(state.status);
    await sleep(delay);
    delay = Math.min(MAX_POLL_MS, delay * 1.5);
  }
}
