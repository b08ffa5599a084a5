// docqa's page: plain JavaScript, no build step, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("docqa-token");

// Every API call goes through here: the token (asked for once, on the first 401), JSON errors
// shown as their one-sentence detail.
async function api(path, options = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = Object.assign({}, options.headers || {});
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status === 401 && attempt === 0) {
      const given = window.prompt("This docqa server needs its token:");
      if (!given) break;
      token = given.trim();
      sessionStorage.setItem("docqa-token", token);
      continue;
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    return response;
  }
  throw new Error("This server needs a token.");
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// --- documents --------------------------------------------------------------------------

async function loadFiles() {
  try {
    const { documents } = await (await api("/v1/documents")).json();
    const list = $("file-list");
    list.replaceChildren(...documents.map((d) => {
      const pages = d.pages ? `${d.pages} page${d.pages === 1 ? "" : "s"}` : "";
      return fileRow(d.name, d.state, d.reason, d.id, d.upload, pages);
    }));
  } catch (e) {
    $("file-list").replaceChildren(el("li", { class: "error" }, e.message));
  }
}

function fileRow(name, state, reason, id, upload, pages = "") {
  const row = el("li", { class: "file state-" + state },
    el("span", { class: "name" }, name),
    el("span", { class: "state" }, pages ? `${state} · ${pages}` : state));
  if (reason) row.append(el("span", { class: "reason muted" }, reason));
  if (upload && id !== null && id !== undefined) {
    row.append(el("button", {
      type: "button", class: "small", "aria-label": "Remove " + name,
      onclick: async () => {
        await api("/v1/documents/" + id, { method: "DELETE" });
        await loadFiles();
        loadInfo();
      },
    }, "Remove"));
  }
  return row;
}

async function upload(files) {
  if (!files.length) return;
  const list = $("file-list");
  const pending = [...files].map((f) => {
    const row = fileRow(f.name, "uploading", "", null, false);
    list.prepend(row);
    return row;
  });
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  try {
    await api("/v1/documents", { method: "POST", body: form });
    await loadFiles();
    loadInfo();
  } catch (e) {
    for (const row of pending) {
      row.className = "file state-failed";
      row.querySelector(".state").textContent = "failed";
      row.append(el("span", { class: "reason" }, e.message));
    }
  }
}

function setUpDrop() {
  const drop = $("drop");
  const input = $("file-input");
  input.addEventListener("change", () => { upload(input.files); input.value = ""; });
  drop.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); input.click(); }
  });
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    upload(ev.dataTransfer.files);
  });
}

// --- asking -----------------------------------------------------------------------------

// The answer inside its context line, marked (as the CLI does: whitespace folded).
function markedContext(answer) {
  const text = answer.text.split(/\s+/).join(" ");
  const context = answer.context || "";
  const at = context.indexOf(text);
  if (at < 0) return [el("mark", { class: "answer" }, answer.text)];
  return [context.slice(0, at), el("mark", { class: "answer" }, text), context.slice(at + text.length)];
}

function where(item) {
  return item.page !== null && item.page !== undefined ? `${item.source}:${item.page}` : item.source;
}

async function ask(ev) {
  ev.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("ask-status").textContent = "Reading…";
  $("answers").replaceChildren();
  try {
    const response = await api("/v1/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question, top_k: 3 }),
    });
    const result = await response.json();
    $("ask-status").textContent = result.answers.length
      ? `${result.answers.length} answer(s) in ${result.timings.answer.toFixed(2)} s`
      : "No answer found.";
    $("answers").replaceChildren(...result.answers.map((a) => {
      const open = el("button", {
        type: "button", class: "open",
        "aria-label": `Show ${where(a)} with the answer highlighted`,
        onclick: () => showPage(a.doc_id, a.page, a.start, a.end, where(a)),
      }, where(a));
      if (a.page === null || a.doc_id === null || !a.source.toLowerCase().endsWith(".pdf")) {
        open.disabled = true;
      }
      return el("li", { class: "answer" },
        el("div", { class: "row" },
          el("strong", { class: "text" }, a.text),
          el("span", { class: "score muted" }, `score ${a.score.toFixed(3)}`),
          open),
        el("p", { class: "context" }, ...markedContext(a)));
    }));
  } catch (e) {
    $("ask-status").textContent = e.message;
  }
}

async function showPage(id, page, start, end, label) {
  const viewer = $("viewer");
  const image = $("page-image");
  viewer.hidden = false;
  $("viewer-title").textContent = label;
  image.alt = `Page ${page} of ${label}, the answer highlighted`;
  try {
    const response = await api(`/v1/documents/${id}/pages/${page}.png?highlight=${start}:${end}`);
    const old = image.src;
    image.src = URL.createObjectURL(await response.blob());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    $("viewer-close").focus();
    viewer.scrollIntoView({ block: "nearest" });
  } catch (e) {
    $("viewer-title").textContent = e.message;
  }
}

// --- search -----------------------------------------------------------------------------

function markedSnippet(snippet, query) {
  const words = query.toLowerCase().split(/\W+/).filter((w) => w.length > 2);
  const flat = snippet.split(/\s+/).join(" ");
  if (!words.length) return [flat];
  const pattern = new RegExp("(" + words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|") + ")", "gi");
  return flat.split(pattern).map((part, i) => (i % 2 ? el("mark", {}, part) : part));
}

async function search(ev) {
  ev.preventDefault();
  const q = $("query").value.trim();
  if (!q) return;
  $("search-status").textContent = "Searching…";
  try {
    const { hits } = await (await api("/v1/search?" + new URLSearchParams({ q, k: 10 }))).json();
    $("search-status").textContent = hits.length ? "" : "Nothing found.";
    $("hits").replaceChildren(...hits.map((h) => el("li", { class: "hit" },
      el("div", { class: "row" },
        el("strong", {}, where(h)),
        el("span", { class: "muted" }, `score ${h.score.toFixed(3)}`)),
      el("p", { class: "context" }, ...markedSnippet(h.snippet, q)))));
  } catch (e) {
    $("search-status").textContent = e.message;
  }
}

// --- tabs -------------------------------------------------------------------------------

function selectTab(tab) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t === tab;
    t.setAttribute("aria-selected", on);
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
  $(tab.id === "tab-ask" ? "question" : "query").focus();
}

function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (ev) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
      if (step) selectTab(tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length]);
    });
  }
}

async function loadInfo() {
  try {
    const info = await (await api("/v1/info")).json();
    const model = info.model.split(/[\\/]/).filter(Boolean).pop();
    $("info").textContent = `${model} · ${info.documents} document(s)`;
  } catch (e) { /* shown by the file list */ }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpDrop();
  setUpTabs();
  $("ask-form").addEventListener("submit", ask);
  $("search-form").addEventListener("submit", search);
  $("viewer-close").addEventListener("click", () => { $("viewer").hidden = true; $("question").focus(); });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("viewer").hidden) { $("viewer").hidden = true; $("question").focus(); }
  });
  loadFiles().then(loadInfo);
  $("question").focus();
});
