// The inpaint mask painter: the picture with a translucent layer on top that the user
// paints with a pointer, or with the keyboard (arrows move the brush, Space paints).
// The painted layer is kept at the picture's own pixel size and exported as the PNG the
// contract asks for: white where the image should change, black elsewhere.

import { el } from './ui.js';

const PAINT = 'rgba(255, 40, 90, 1)';
const KEY_STEP = 0.04; // of the picture's longer side, per arrow press

export function mountPainter(fieldset) {
  const stage = fieldset.querySelector('[data-stage]');
  const brush = fieldset.querySelector('#inpaint-brush');
  const erase = fieldset.querySelector('#inpaint-erase');
  const coverageText = fieldset.querySelector('[data-coverage]');
  const picture = el('canvas', { class: 'layer-picture', 'aria-hidden': 'true' });
  const mask = el('canvas', { class: 'layer-mask', 'aria-hidden': 'true' });
  const cursor = el('canvas', {
    // An application region: arrow keys and Space reach the painter, not page scrolling.
    class: 'layer-cursor', tabindex: '0', role: 'application',
    'aria-label': 'Mask painter', 'aria-describedby': 'inpaint-painter-help',
  });
  stage.replaceChildren(picture, mask, cursor);
  let painted = false;
  let drawing = false;
  let last = null;
  let at = { x: 0, y: 0 };

  // Brush size is in screen pixels, so it feels the same whatever the picture's size.
  const radius = () => (Number(brush.value) / 2) * (mask.width / Math.max(1, cursor.getBoundingClientRect().width));

  const toCanvas = (event) => {
    const rect = cursor.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) / rect.width) * mask.width,
      y: ((event.clientY - rect.top) / rect.height) * mask.height,
    };
  };

  const showCursor = () => {
    const ctx = cursor.getContext('2d');
    ctx.clearRect(0, 0, cursor.width, cursor.height);
    ctx.lineWidth = Math.max(2, mask.width / 300);
    ctx.strokeStyle = '#ffffff';
    ctx.beginPath();
    ctx.arc(at.x, at.y, radius(), 0, Math.PI * 2);
    ctx.stroke();
    ctx.setLineDash([ctx.lineWidth * 2, ctx.lineWidth * 2]);
    ctx.strokeStyle = '#000000';
    ctx.stroke();
  };

  const stroke = (from, to) => {
    const ctx = mask.getContext('2d');
    ctx.globalCompositeOperation = erase.checked ? 'destination-out' : 'source-over';
    ctx.strokeStyle = PAINT;
    ctx.fillStyle = PAINT;
    ctx.lineCap = 'round';
    ctx.lineWidth = radius() * 2;
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(to.x, to.y, radius(), 0, Math.PI * 2);
    ctx.fill();
  };

  const coverage = () => {
    if (!mask.width) return 0;
    const data = mask.getContext('2d').getImageData(0, 0, mask.width, mask.height).data;
    let on = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) on += 1;
    return on / (mask.width * mask.height);
  };

  const report = () => {
    const share = coverage();
    painted = share > 0;
    fieldset.dataset.coverage = share.toFixed(4);
    coverageText.textContent = painted
      ? `The mask covers ${Math.max(1, Math.round(share * 100))}% of the picture.`
      : 'Nothing painted yet.';
  };

  cursor.addEventListener('pointerdown', (event) => {
    if (!mask.width) return;
    cursor.setPointerCapture(event.pointerId);
    drawing = true;
    last = toCanvas(event);
    stroke(last, last);
  });
  cursor.addEventListener('pointermove', (event) => {
    if (!mask.width) return;
    at = toCanvas(event);
    if (drawing) { stroke(last, at); last = at; }
    showCursor();
  });
  const end = () => { if (drawing) { drawing = false; report(); } };
  cursor.addEventListener('pointerup', end);
  cursor.addEventListener('pointercancel', end);

  cursor.addEventListener('keydown', (event) => {
    if (!mask.width) return;
    const step = KEY_STEP * Math.max(mask.width, mask.height);
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[event.key]) {
      event.preventDefault();
      const [dx, dy] = moves[event.key];
      const next = {
        x: Math.min(mask.width, Math.max(0, at.x + dx * step)),
        y: Math.min(mask.height, Math.max(0, at.y + dy * step)),
      };
      if (event.shiftKey) { stroke(at, next); }
      at = next;
      showCursor();
      if (event.shiftKey) report();
    } else if (event.key === ' ' || event.key === 'Enter') {
      event.preventDefault();
      stroke(at, at);
      report();
    }
  });
  brush.addEventListener('input', showCursor);

  fieldset.querySelector('[data-clear-mask]').addEventListener('click', () => {
    mask.getContext('2d').clearRect(0, 0, mask.width, mask.height);
    report();
  });

  return {
    /** Shows `blob` (or nothing) and starts a fresh mask at its pixel size. */
    async load(blob) {
      fieldset.hidden = !blob;
      if (!blob) return;
      const bitmap = await createImageBitmap(blob);
      for (const layer of [picture, mask, cursor]) {
        layer.width = bitmap.width;
        layer.height = bitmap.height;
      }
      stage.style.aspectRatio = `${bitmap.width} / ${bitmap.height}`;
      picture.getContext('2d').drawImage(bitmap, 0, 0);
      bitmap.close();
      at = { x: mask.width / 2, y: mask.height / 2 };
      report();
    },
    /** The mask as a black-and-white PNG, or null when nothing is painted. */
    async maskPng() {
      if (!painted) return null;
      const out = el('canvas', { width: String(mask.width), height: String(mask.height) });
      const ctx = out.getContext('2d');
      const src = mask.getContext('2d').getImageData(0, 0, mask.width, mask.height);
      const dst = ctx.createImageData(mask.width, mask.height);
      for (let i = 0; i < src.data.length; i += 4) {
        const v = src.data[i + 3] > 0 ? 255 : 0;
        dst.data[i] = v; dst.data[i + 1] = v; dst.data[i + 2] = v; dst.data[i + 3] = 255;
      }
      ctx.putImageData(dst, 0, 0);
      return new Promise((resolve) => out.toBlob(resolve, 'image/png'));
    },
  };
}
