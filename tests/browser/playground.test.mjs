// The playground at GET /, driven in headless Chromium the way a person would use it:
// the page loads, a key is entered, an image is generated and shown, background (async)
// work survives a reload, a mask is painted and an inpaint returns, a two-turn chat
// shows two images, a 3-step story completes, and the page holds up on a 375 px screen
// and with the keyboard alone. Screenshots of
// each step go to target/browser-screenshots/.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { shoot, startBrowser, startImagegate } from './harness.mjs';

/** The model with a 512 size, which keeps the rendered images small. */
const FLASH = 'gemini-3.1-flash-image';

const STEP_TIMEOUT = 60_000;
let server;
let browser;
let page;
const problems = [];

before(async () => {
  server = await startImagegate();
  browser = await startBrowser();
  page = await browser.context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  // Any script error or refused load (a CSP violation included) fails the run.
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  // Chromium logs every 4xx answer and failed load as a console error; the test provokes
  // 400, 401 and a cut-off poll on purpose, and the page shows them. Anything else logged
  // as an error is a problem.
  const expected = /^Failed to load resource: (the server responded with a status of 40[01]|net::ERR_FAILED)/;
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    if (expected.test(msg.text())) return;
    problems.push(`console: ${msg.text()}`);
  });
});

after(async () => {
  await browser?.stop();
  await server?.stop();
});

/** The same request made directly, to compare the page with the API's own answer. */
async function api(pathname, body) {
  const response = await fetch(`${server.base}${pathname}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${server.key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function sourceImage(name, prompt) {
  const { status, body } = await api('/generate-image', { prompt, model: FLASH, image_size: '512' });
  assert.equal(status, 200, JSON.stringify(body));
  const file = path.join(tmpdir(), `imagegate-${process.pid}-${name}.png`);
  await writeFile(file, Buffer.from(body.images[0], 'base64'));
  return file;
}

async function open(tool) {
  await page.click(`nav.tools a[href="#${tool}"]`);
  await page.waitForSelector(`#tool-${tool}:not([hidden])`);
}

async function naturalSize(selector) {
  await page.waitForFunction((s) => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }, selector);
  return page.$eval(selector, (img) => [img.naturalWidth, img.naturalHeight]);
}

test('the playground, end to end in Chromium', async (t) => {
  await t.test('the page loads without a key', async () => {
    const response = await page.goto(`${server.base}/`);
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.title(), 'imagegate playground');
    assert.match(await page.textContent('#key-state'), /No key saved yet/);
    await shoot(page, '01-loaded');
  });

  await t.test('a wrong key is refused in the server\'s words and not kept', async () => {
    await page.fill('#key-input', 'igk_not_a_real_key');
    await page.press('#key-input', 'Enter');
    await page.waitForSelector('#key-error .message');
    assert.match(await page.textContent('#key-error'), /The API key is not valid/);
    assert.equal(await page.evaluate(() => localStorage.getItem('imagegate.key')), null);
  });

  await t.test('the key is typed with the keyboard alone and kept in the browser', async () => {
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'key-input');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none', 'focus is visible');
    await page.keyboard.type(server.key);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#key-state').textContent.startsWith('Key saved'));
    assert.equal(await page.evaluate(() => localStorage.getItem('imagegate.key')), server.key);
    await page.waitForFunction(() => document.querySelector('#usage-summary').textContent.startsWith('Last 30 days'));
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    assert.match(await page.textContent('#key-state'), /A key is saved in this browser/);
    await shoot(page, '02-key-saved');
  });

  await t.test('an image is generated on the offline provider and shown', async () => {
    await open('generate');
    await page.fill('#generate-prompt', 'A watercolor lighthouse on a cliff at dusk');
    await page.selectOption('#generate-aspect', '16:9');
    // 512 is a size of 3.1 Flash; the default model (Nano Banana 2.1) has none.
    await page.selectOption('#generate-model', FLASH);
    await page.selectOption('#generate-size', '512');
    await page.fill('#generate-temperature', '0.8');
    await page.click('#generate-form button[type="submit"]');
    const [w, h] = await naturalSize('#tool-generate [data-result] img');
    assert.deepEqual([w, h], [688, 384], 'the aspect ratio and size were obeyed');
    assert.match(await page.textContent('#tool-generate [data-result] .meta'), /Model offline/);
    assert.ok(await page.$('#tool-generate [data-result] a[download]'), 'a download link');
    await page.waitForFunction(() => /1 request\b/.test(document.querySelector('#usage-summary').textContent));
    await shoot(page, '03-generate');
  });

  await t.test('a refused request shows the contract\'s message and marks the field', async () => {
    await page.fill('#generate-temperature', '5');
    await page.click('#generate-form button[type="submit"]');
    await page.waitForSelector('#generate-form [data-error] .message');
    const expected = await api('/generate-image', { prompt: 'x', temperature: 5 });
    assert.equal(expected.status, 400);
    assert.equal(await page.textContent('#generate-form [data-error] .message'), expected.body.message);
    assert.equal(await page.getAttribute('#generate-temperature', 'aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'generate-temperature');
    await shoot(page, '04-error');
    await page.fill('#generate-temperature', '');
  });

  await t.test('background (async) work is picked up again after a reload', async () => {
    await open('generate');
    await page.fill('#generate-prompt', 'A lighthouse at night, in the background');
    // 512 is a size of 3.1 Flash; the default model (Nano Banana 2.1) has none.
    await page.selectOption('#generate-model', FLASH);
    await page.selectOption('#generate-size', '512');
    await page.check('#generate-async');
    // The first status poll is cut off, as if the network dropped: the page keeps the
    // request's id. The server has the work regardless.
    let cut = false;
    await page.route('**/requests/*', (route) => {
      if (cut) return route.continue();
      cut = true;
      return route.abort();
    });
    await page.click('#generate-form button[type="submit"]');
    await page.waitForSelector('#generate-form [data-error] .message');
    assert.match(await page.textContent('#generate-form [data-error]'), /could not be reached/);
    const pending = await page.evaluate(() => JSON.parse(localStorage.getItem('imagegate.pending')));
    assert.equal(pending.length, 1);
    assert.equal(pending[0].tool, 'tool-generate');
    await page.unroute('**/requests/*');
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    await naturalSize('#tool-generate [data-result] img');
    assert.match(await page.textContent('#tool-generate [data-result] .meta'), new RegExp(pending[0].id));
    assert.equal(await page.evaluate(() => localStorage.getItem('imagegate.pending')), '[]');
    await page.uncheck('#generate-async');
    await shoot(page, '04b-background');
  });

  await t.test('a mask is painted on the picture and the inpaint returns', async () => {
    const source = await sourceImage('street', 'a quiet street with a blue car');
    await open('inpaint');
    await page.setInputFiles('#inpaint-image', source);
    await page.waitForSelector('#tool-inpaint [data-painter]:not([hidden])');
    await page.waitForFunction(() => document.querySelector('.layer-mask').width > 0);
    await page.locator('.layer-cursor').scrollIntoViewIfNeeded();
    const box = await page.locator('.layer-cursor').boundingBox();
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    await page.mouse.move(cx - box.width * 0.15, cy);
    await page.mouse.down();
    for (let i = 1; i <= 10; i += 1) await page.mouse.move(cx - box.width * 0.15 + (i * box.width * 0.03), cy + (i % 2) * 10);
    await page.mouse.up();
    // And one dab with the keyboard: focus the picture, move right, press Space.
    await page.focus('.layer-cursor');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('Space');
    const coverage = Number(await page.getAttribute('#tool-inpaint [data-painter]', 'data-coverage'));
    assert.ok(coverage > 0.01 && coverage < 0.5, `the mask covers part of the picture: ${coverage}`);
    assert.match(await page.textContent('#tool-inpaint [data-coverage]'), /The mask covers \d+%/);
    await page.fill('#inpaint-prompt', 'A red vintage car');
    await page.click('#inpaint-form button[type="submit"]');
    const size = await naturalSize('#tool-inpaint [data-result] img');
    assert.deepEqual(size, [512, 512]);
    // Outside the mask the gateway returns the original pixels; inside, new ones.
    const [corner, centre] = await page.evaluate(async () => {
      const pixel = async (img, x, y) => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        return Array.from(ctx.getImageData(x, y, 1, 1).data);
      };
      const before = document.querySelector('#tool-inpaint .picks img');
      const after = document.querySelector('#tool-inpaint [data-result] img');
      const same = async (x, y) => JSON.stringify(await pixel(before, x, y)) === JSON.stringify(await pixel(after, x, y));
      return [await same(5, 5), await same(256, 256)];
    });
    assert.equal(corner, true, 'a pixel far from the mask is unchanged');
    assert.equal(centre, false, 'a pixel under the mask changed');
    await shoot(page, '05-inpaint');
  });

  await t.test('a two-turn chat shows two images', async () => {
    await open('chat');
    await page.fill('#chat-message', 'Create a professional headshot of a business executive');
    await page.click('#chat-form button[type="submit"]');
    await naturalSize('.chat-log .turn.model[data-turn="1"] img');
    await page.fill('#chat-message', 'Make the lighting softer and add more warmth');
    await page.click('#chat-form button[type="submit"]');
    await naturalSize('.chat-log .turn.model[data-turn="2"] img');
    const ids = await page.$$eval('.chat-log .turn.model code', (codes) => codes.map((c) => c.textContent));
    assert.equal(ids.length, 2);
    assert.notEqual(ids[0], ids[1]);
    assert.equal(await page.$$eval('.chat-log .turn.user', (t) => t.length), 2);
    await shoot(page, '06-chat');
    // The conversation survives a reload: it is read back from GET /chat/{id}.
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('.chat-log .turn.model img'))
      .filter((i) => i.naturalWidth > 0).length === 2);
    assert.equal(await page.$$eval('.chat-log .turn.user', (t) => t.length), 2);
  });

  await t.test('a 3-step story fills in step by step and completes', async () => {
    await open('story');
    await page.fill('#story-description', 'A step-by-step visual guide for making homemade pizza');
    await page.fill('#story-steps', '3');
    await page.selectOption('#story-type', 'recipe');
    await page.fill('#story-style', 'clean food photography');
    await page.click('#tool-story details.options summary');
    // 512 is a size of 3.1 Flash; the default model (Nano Banana 2.1) has none.
    await page.selectOption('#story-model', FLASH);
    await page.selectOption('#story-size', '512');
    // Record how many cards were filled each time one filled: one at a time, in order.
    await page.evaluate(() => {
      window.storyFills = [];
      const grid = document.querySelector('[data-story-grid]');
      new MutationObserver(() => {
        const filled = grid.querySelectorAll('li[data-filled-at]').length;
        if (filled !== window.storyFills.at(-1) && filled > 0) window.storyFills.push(filled);
      }).observe(grid, { subtree: true, attributes: true, attributeFilter: ['data-filled-at'] });
    });
    await page.click('#story-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-story-grid] li[data-filled-at] img').length === 3);
    await page.waitForSelector('#tool-story [data-result] .meta');
    assert.deepEqual(await page.evaluate(() => window.storyFills), [1, 2, 3]);
    const captions = await page.$$eval('[data-story-grid] .caption', (c) => c.map((x) => x.textContent));
    assert.equal(captions.length, 3);
    captions.forEach((c, i) => assert.ok(c.startsWith(`${i + 1}. `) && c.length > 4, c));
    for (let i = 1; i <= 3; i += 1) {
      assert.deepEqual(await naturalSize(`[data-story-grid] li[data-step="${i}"] img`), [512, 512]);
    }
    assert.match(await page.textContent('#tool-story [data-result]'), /3 of 3 steps/);
    await shoot(page, '07-story');
  });

  await t.test('the one-request story fills every card at the end', async () => {
    await page.check('#story-mode-whole');
    await page.fill('#story-steps', '2');
    await page.click('#story-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-story-grid] li[data-filled-at] img').length === 2);
    assert.match(await page.textContent('#tool-story [data-result]'), /2 of 2 steps/);
    // And the same in the background: submitted with async, polled, filled at the end.
    await page.check('#story-mode-background');
    await page.click('#story-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-story-grid] li[data-filled-at] img').length === 2);
    assert.match(await page.textContent('#tool-story [data-result]'), /2 of 2 steps/);
    await page.check('#story-mode-steps');
  });

  await t.test('edit, compose, outpaint and style transfer each return an image', async () => {
    const a = await sourceImage('a', 'a red apple');
    const b = await sourceImage('b', 'a green field');
    await open('edit');
    await page.setInputFiles('#edit-image', a);
    await page.fill('#edit-prompt', 'Make it golden');
    await page.click('#edit-form button[type="submit"]');
    await naturalSize('#tool-edit [data-result] img');

    await open('compose');
    await page.setInputFiles('#compose-images', [a, b]);
    assert.equal(await page.$$eval('#tool-compose .picks li', (l) => l.length), 2);
    await page.fill('#compose-prompt', 'The apple in the field');
    await page.selectOption('#compose-style', 'side_by_side');
    await page.click('#compose-form button[type="submit"]');
    await naturalSize('#tool-compose [data-result] img');

    await open('outpaint');
    await page.click('#tool-outpaint button:has-text("Use the latest result")');
    await page.uncheck('#outpaint-top');
    await page.uncheck('#outpaint-bottom');
    await page.fill('#outpaint-prompt', 'More of the scene');
    await page.fill('#outpaint-ratio', '1');
    await page.click('#outpaint-form button[type="submit"]');
    const [inW, inH] = await naturalSize('#tool-outpaint .picks img');
    const [outW, outH] = await naturalSize('#tool-outpaint [data-result] img');
    assert.ok(outW > inW * 1.5 && outH === inH, `grown sideways only: ${inW}x${inH} -> ${outW}x${outH}`);
    await shoot(page, '08-outpaint');

    await open('style');
    await page.setInputFiles('#style-image', b);
    await page.selectOption('#style-preset', 'van_gogh');
    await page.click('#style-form button[type="submit"]');
    await naturalSize('#tool-style [data-result] img');
    await shoot(page, '09-style');
  });

  await t.test('the gallery lists the key\'s images with downloads, and usage shows cost', async () => {
    await open('gallery');
    await page.waitForFunction(() => document.querySelectorAll('.gallery a[download]').length >= 10);
    const shown = await page.$$eval('.gallery img', (imgs) => imgs.filter((i) => i.naturalWidth > 0).length);
    assert.ok(shown >= 10, `${shown} previews`);
    await shoot(page, '10-gallery');
    await open('usage');
    // Every image so far was one request of this key: the table and the header say so.
    const made = await page.$$eval('.gallery li', (items) => items.length);
    await page.waitForFunction((n) => new RegExp(`totals \\$0\\.00 for ${n} images`).test(
      document.querySelector('#tool-usage caption')?.textContent || ''), made);
    assert.match(await page.textContent('#tool-usage table'), /offline/);
    assert.match(await page.textContent('#usage-summary'), new RegExp(`${made} images`));
    await shoot(page, '11-usage');
  });

  await t.test('a batch of prompts runs in the background and shows each item', async () => {
    await open('batches');
    await page.fill('#batch-prompts', 'A teapot\n# skipped\nA cup');
    await page.fill('#batch-name', 'tea set');
    await page.click('#tool-batches button[type="submit"]');
    await page.waitForFunction(() => /^succeeded: 2 items/.test(
      document.querySelector('[data-batch-state]').textContent), null, { timeout: 60000 });
    await page.waitForFunction(() => [...document.querySelectorAll('[data-batch-items] img')]
      .filter((i) => i.naturalWidth > 0).length === 2);
    assert.match(await page.textContent('[data-batch-list]'), /tea set/);
    await shoot(page, '12-batches');
  });

  await t.test('on a 375 px screen the page fits and works with the keyboard alone', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${server.base}/#generate`);
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    // Choose "Story" from the menu by keyboard: focus lands on its heading.
    await page.focus('nav.tools a[href="#story"]');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement.id === 'story-title');
    await page.focus('nav.tools a[href="#generate"]');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement.id === 'generate-title');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'generate-prompt');
    await page.keyboard.type('A fox in the snow');
    // Onwards through the options to the button, all by Tab.
    for (let i = 0; i < 12; i += 1) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement.textContent === 'Generate')) break;
    }
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Generate');
    await page.keyboard.press('Enter');
    await naturalSize('#tool-generate [data-result] img');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at 375 px (overflow ${overflow} px)`);
    await shoot(page, '12-narrow-generate');
    await open('story');
    const storyOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(storyOverflow <= 0, `story fits at 375 px (overflow ${storyOverflow} px)`);
    await shoot(page, '13-narrow-story');
  });

  await t.test('a key with scopes and a budget: the page shows them and what is left', async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    // A fresh start, as a teammate's browser: nothing of the first key's work kept (the
    // page writes its state as it leaves, so storage is cleared on the new page).
    await page.goto(`${server.base}/#generate`);
    await page.evaluate(() => { localStorage.clear(); sessionStorage.clear(); });
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    await page.fill('#key-input', server.scopedKey);
    await page.click('#key-form button[type="submit"]');
    await page.waitForFunction(() => /Scopes: chat, generate/.test(document.querySelector('#key-summary').textContent));
    // One generation with the key, so what is shown comes after spending.
    await open('generate');
    await page.fill('#generate-prompt', 'A paper boat');
    await page.selectOption('#generate-model', FLASH);
    await page.selectOption('#generate-size', '512');
    await page.click('#generate-form button[type="submit"]');
    await naturalSize('#tool-generate [data-result] img');
    const me = await (await fetch(`${server.base}/keys/me`, {
      headers: { Authorization: `Bearer ${server.scopedKey}` },
    })).json();
    assert.equal(me.budget.daily.limit_usd, 2.5, JSON.stringify(me));
    const left = `$${me.budget.daily.remaining_usd.toFixed(2)} left of $2.50`;
    const spent = `spent $${me.budget.daily.spent_usd.toFixed(2)}`;
    await page.waitForFunction(([l, s]) => {
      const text = document.querySelector('#key-summary').textContent;
      return text.includes(l) && text.includes(s);
    }, [left, spent]);
    const summary = await page.textContent('#key-summary');
    assert.match(summary, /Models: gemini-3\.1-flash-image/);
    assert.match(summary, /Daily budget: .* resets \d{4}-\d\d-\d\d 00:00 UTC/);
    assert.doesNotMatch(summary, /Monthly budget/);
    await shoot(page, '14-scoped-key');
  });

  await t.test('no script error or refused load happened', () => {
    assert.deepEqual(problems, []);
  });
});
