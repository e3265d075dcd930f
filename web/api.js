// Every call the page makes goes through here: the stored key as a bearer token, and
// the contract's error body (error, message, details, request_id) turned into ApiError.

const KEY_STORAGE = 'imagegate.key';

export const keyStore = {
  get() {
    try { return localStorage.getItem(KEY_STORAGE) || ''; } catch { return ''; }
  },
  set(key) { localStorage.setItem(KEY_STORAGE, key); },
  clear() { localStorage.removeItem(KEY_STORAGE); },
};

export class ApiError extends Error {
  constructor(status, body, requestId) {
    const message = (body && typeof body.message === 'string' && body.message)
      || `The server answered ${status} without an explanation.`;
    super(message);
    this.status = status;
    this.code = (body && body.error) || 'unknown_error';
    this.details = (body && body.details) || {};
    this.requestId = (body && body.request_id) || requestId || '';
  }
}

export class NoKeyError extends Error {
  constructor() { super('Enter an API key above first.'); this.code = 'no_key'; }
}

function authHeaders() {
  const key = keyStore.get();
  if (!key) throw new NoKeyError();
  return { Authorization: `Bearer ${key}` };
}

/** JSON in (`json`) or multipart (`form`, a FormData), JSON out. */
export async function call(path, { method = 'GET', json, form } = {}) {
  const headers = authHeaders();
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: 'no-store' });
  } catch {
    throw new ApiError(0, { error: 'network_error', message: 'The server could not be reached. Is imagegate still running?' });
  }
  const requestId = response.headers.get('x-request-id') || '';
  const isJson = (response.headers.get('content-type') || '').includes('application/json');
  const parsed = isJson ? await response.json().catch(() => null) : null;
  if (!response.ok) throw new ApiError(response.status, parsed, requestId);
  if (response.status !== 204 && parsed === null) {
    throw new ApiError(response.status, { message: 'The server answered with something that is not JSON.' }, requestId);
  }
  return parsed;
}

// Object URLs of images the page holds, by image id: generated results are kept from
// their response bytes, so the gallery never fetches them again (each fetch counts
// against the key's per-minute limit).
const blobUrls = new Map();

export function base64ToBlob(b64, mime) {
  const raw = atob(b64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return new Blob([bytes], { type: mime || 'image/png' });
}

export function rememberImage(imageId, blob) {
  if (!blobUrls.has(imageId)) blobUrls.set(imageId, { url: URL.createObjectURL(blob), blob });
  return blobUrls.get(imageId);
}

/** A stored image as { url, blob }; `<img>` cannot send the key, so bytes come by fetch. */
export async function imageById(imageId) {
  if (blobUrls.has(imageId)) return blobUrls.get(imageId);
  let response;
  try {
    response = await fetch(`/images/${encodeURIComponent(imageId)}`, { headers: authHeaders() });
  } catch {
    throw new ApiError(0, { error: 'network_error', message: 'The server could not be reached.' });
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new ApiError(response.status, body, response.headers.get('x-request-id'));
  }
  return rememberImage(imageId, await response.blob());
}

/** The images of a generation response, each { id, url, blob, mime }, remembered by id. */
export function imagesOf(response) {
  return (response.images || []).map((b64, i) => {
    const mime = (response.mime_types || [])[i] || 'image/png';
    const id = (response.image_ids || [])[i] || `unsaved_${i}`;
    const { url, blob } = rememberImage(id, base64ToBlob(b64, mime));
    return { id, url, blob, mime };
  });
}

/** Tells the usage summary and the gallery that the key has spent something. */
export function announceSpend() {
  document.dispatchEvent(new CustomEvent('imagegate:spent'));
}
