// Live pages without reloading: refresh the #live section of a page while its study runs, and page,
// sort and filter the trials table in place. Every link and form also works without JavaScript.
"use strict";

const REFRESH_MS = 5000;

// One request in flight per element: a newer one aborts the older, so a slow answer can never
// overwrite a newer one (a sort clicked while a refresh was still loading).
const inFlight = new WeakMap();

async function fetchInto(element, url) {
  inFlight.get(element)?.abort();
  const controller = new AbortController();
  inFlight.set(element, controller);
  try {
    const response = await fetch(url, { headers: { "X-Asktell-Fragment": "1" }, signal: controller.signal });
    const html = response.ok ? await response.text() : null;
    if (html !== null && inFlight.get(element) === controller) {
      // Trials ticked for comparison stay ticked when the table is refreshed or paged.
      const ticked = new Set([...element.querySelectorAll("input[name=trials]:checked")].map((box) => box.value));
      element.innerHTML = html;
      element.querySelectorAll("input[name=trials]").forEach((box) => { box.checked = ticked.has(box.value); });
      element.dataset.loadedAt = String(Date.now());
    }
  } catch (error) {
    if (error.name !== "AbortError") console.warn("refresh failed", url, error);
  } finally {
    if (inFlight.get(element) === controller) inFlight.delete(element);
  }
}

// A periodic refresh skips an element whose last request is still loading, rather than piling up.
function refresh(element, url) {
  if (!inFlight.has(element)) fetchInto(element, url);
}

function tableUrl(href) {
  const trials = document.getElementById("trials");
  const base = new URL(trials.dataset.tableUrl, window.location.href);
  const target = new URL(href, window.location.href);
  base.search = target.search;
  return base;
}

function wireTable() {
  const trials = document.getElementById("trials");
  if (!trials) return;
  trials.addEventListener("click", (event) => {
    const link = event.target.closest("a.table-link");
    if (!link) return;
    event.preventDefault();
    const url = tableUrl(link.getAttribute("href"));
    trials.dataset.tableUrl = url.pathname + url.search;
    history.replaceState(null, "", window.location.pathname + url.search + "#trials-section");
    fetchInto(trials, url);
  });
  const filters = document.getElementById("filters");
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams(new FormData(filters));
    const current = new URL(trials.dataset.tableUrl, window.location.href).searchParams;
    query.set("sort", current.get("sort") || "number");  // keep the order chosen in the table
    query.set("desc", current.get("desc") || "0");
    const url = tableUrl("?" + query.toString());
    trials.dataset.tableUrl = url.pathname + url.search;
    history.replaceState(null, "", window.location.pathname + url.search + "#trials-section");
    fetchInto(trials, url);
  });
}

function startLive() {
  const live = document.getElementById("live");
  if (!live || live.hasAttribute("data-live-off")) return;
  setInterval(() => {
    if (document.hidden) return;
    refresh(live, live.dataset.liveUrl);
    const trials = document.getElementById("trials");
    if (trials) refresh(trials, trials.dataset.tableUrl);
  }, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  wireTable();
  startLive();
});
