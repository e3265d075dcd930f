// Usage and cost of the key (GET /usage): a one-line summary in the header, kept fresh
// after every generation, and a table by day and model under "Usage". Below it, what the
// key may use and what is left of its budget (GET /keys/me).

import { call } from './api.js';
import { clearError, el, formatCost, showError } from './ui.js';

const SPENT_REFRESH_MS = 1000;

const COLUMNS = [
  ['date', 'Day (UTC)'], ['model', 'Model'], ['requests', 'Requests'], ['images', 'Images'],
  ['input_tokens', 'Input tokens'], ['output_tokens', 'Output tokens'], ['cost_usd', 'Cost'],
];

function count(n, noun) {
  const k = Number(n) || 0;
  return `${k} ${noun}${k === 1 ? '' : 's'}`;
}

function cell(name, row) {
  return name === 'cost_usd' ? formatCost(row.cost_usd) : String(row[name] ?? '');
}

function budgetLine(name, period) {
  if (!period) return null;
  const resets = new Date(period.resets_at).toISOString().slice(0, 16).replace('T', ' ');
  return `${name} budget: ${formatCost(period.remaining_usd)} left of ${formatCost(period.limit_usd)} (spent ${formatCost(period.spent_usd)}, resets ${resets} UTC)`;
}

function describeKeySettings(me) {
  const parts = [
    `Scopes: ${me.scopes ? me.scopes.join(', ') || 'none' : 'all'}`,
    `Models: ${me.models ? me.models.join(', ') || 'none' : 'all'}`,
  ];
  const budget = me.budget || {};
  const lines = [budgetLine('Daily', budget.daily), budgetLine('Monthly', budget.monthly)].filter(Boolean);
  parts.push(lines.length ? lines.join(' · ') : 'No budget');
  return parts.join(' · ');
}

export function mountUsage() {
  const keySummary = document.getElementById('key-summary');
  const section = document.getElementById('tool-usage');
  const summary = document.getElementById('usage-summary');
  const holder = section.querySelector('[data-usage-table]');
  const errorBox = section.querySelector('[data-error]');

  async function refresh() {
    clearError(errorBox);
    try {
      const [usage, me] = await Promise.all([call('/usage?days=30'), call('/keys/me')]);
      keySummary.textContent = describeKeySettings(me);
      const t = usage.totals || {};
      summary.textContent = `Last 30 days: ${count(t.requests, 'request')} · ${count(t.images, 'image')} · ${formatCost(t.cost_usd)}`;
      const rows = [...(usage.days || [])].reverse();
      holder.replaceChildren(rows.length
        ? el('div', { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': 'Usage by day and model' },
          el('table', {},
            el('caption', { text: `From ${usage.from} to ${usage.to}; totals ${formatCost(t.cost_usd)} for ${t.images ?? 0} images.` }),
            el('thead', {}, el('tr', {}, ...COLUMNS.map(([, label]) => el('th', { scope: 'col', text: label })))),
            el('tbody', {}, ...rows.map((row) => el('tr', {}, ...COLUMNS.map(([name]) => el('td', { text: cell(name, row) })))))))
        : el('p', { text: 'Nothing used in the last 30 days.' }));
      return usage;
    } catch (error) {
      summary.textContent = 'Usage unavailable.';
      showError(errorBox, error);
      throw error;
    }
  }

  section.querySelector('[data-usage-refresh]').addEventListener('click', () => refresh().catch(() => {}));
  // At most one refresh per interval however fast work ends (a story's steps end close
  // together), since every refresh is a request counted against the key's limit; the
  // refresh runs after the spending it was scheduled for.
  let timer = null;
  document.addEventListener('imagegate:spent', () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      refresh().catch(() => {});
    }, SPENT_REFRESH_MS);
  });
  return {
    refresh,
    shown() { refresh().catch(() => {}); },
    forget() {
      summary.textContent = 'Usage appears once a key is saved.';
      keySummary.textContent = '';
      holder.replaceChildren();
    },
  };
}
