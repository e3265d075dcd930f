// What the browser test stands on: the real imagegate binary on the offline provider
// (temp data directory, port 0, address read from its JSON start-up line, as
// tests/api/process.rs does), a key made the way the README tells a newcomer
// (`imagegate keys create`), and Debian's Chromium driven by playwright-core.

import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const SHOTS = path.join(ROOT, 'target', 'browser-screenshots');
const BIN = process.env.IMAGEGATE_BIN || path.join(ROOT, 'target', 'debug', 'imagegate');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Without these, Chromium reaches for Google's services at start and is refused by
// this machine's closed network (see the machine notes); the test needs none of them.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const START_TIMEOUT_MS = 30_000;

/** An environment with no Google key, so `auto` could never pick the real provider. */
function offlineEnv() {
  const env = { ...process.env, RUST_LOG: 'info' };
  delete env.GOOGLE_API_KEY;
  delete env.GEMINI_API_KEY;
  return env;
}

export async function startImagegate() {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'imagegate-browser-'));
  const { stdout } = await promisify(execFile)(
    BIN, ['keys', 'create', '--tier', 'paid', '--name', 'browser test', '--data-dir', dataDir],
    { cwd: dataDir, env: offlineEnv() },
  );
  const key = stdout.trim();
  // A second key as a team would hand one out: narrow scopes and a daily budget, for the
  // step that checks the page shows them and what is left.
  const scoped = await promisify(execFile)(
    BIN, ['keys', 'create', '--tier', 'paid', '--name', 'scoped', '--scopes', 'generate,chat',
      '--models', 'gemini-3.1-flash-image', '--daily-budget', '2.5', '--data-dir', dataDir],
    { cwd: dataDir, env: offlineEnv() },
  );
  const scopedKey = scoped.stdout.trim();
  const child = spawn(BIN, [
    'serve', '--host', '127.0.0.1', '--port', '0', '--provider', 'offline',
    '--log-format', 'json', '--data-dir', dataDir,
  ], { cwd: dataDir, env: offlineEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  child.stderr.on('data', (chunk) => log.push(chunk.toString()));
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no start-up line in ${START_TIMEOUT_MS} ms:\n${log.join('')}`));
    }, START_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`imagegate exited with ${code}:\n${log.join('')}`)));
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      log.push(`${line}\n`);
      let entry;
      try { entry = JSON.parse(line); } catch { return; }
      if (entry.fields && entry.fields.message === 'imagegate starting') {
        clearTimeout(timer);
        resolve(entry.fields.address);
      }
    });
  });
  const server = {
    base: `http://${address}`,
    key,
    scopedKey,
    log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await assertServesTheWorkTree(server.base);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/**
 * The page is compiled into the binary, so a binary older than web/ would test old
 * files: refuse to run then, rather than pass or fail on the wrong page.
 */
async function assertServesTheWorkTree(base) {
  const web = path.join(ROOT, 'web');
  for (const name of await readdir(web)) {
    const url = name === 'index.html' ? `${base}/` : `${base}/playground/${name}`;
    const served = await (await fetch(url)).text();
    if (served !== await readFile(path.join(web, name), 'utf8')) {
      throw new Error(`${BIN} serves an older web/${name}: run \`cargo build\` first`);
    }
  }
}

export async function startBrowser() {
  // A new, empty profile for every run.
  const profile = await mkdtemp(path.join(tmpdir(), 'imagegate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  await mkdir(SHOTS, { recursive: true });
  return {
    context,
    async stop() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** A full-page screenshot under target/browser-screenshots/. */
export async function shoot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
