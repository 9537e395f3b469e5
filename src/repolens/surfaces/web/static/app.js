// repolens web UI: small progressive enhancements. Every page works without this file; it adds
// keyboard navigation, live indexing progress, line-range permalinks and streamed chat answers.
// It never inserts repository text as HTML: text goes in through textContent, and the only HTML
// it inserts is the server's own sanitised rendering of a finished answer.
"use strict";

function typing(target) {
  return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

// -- search: "/" focuses the box, j/k move through results, Enter opens one -------------------
// The results are looked up at each key press, not once: the search page is streamed, and this
// script (async) may run while its later results are still arriving.
function setupSearch() {
  const found = () => Array.from(document.querySelectorAll("#results .result[data-href]"));
  let index = -1;
  function select(results, i) {
    index = Math.max(0, Math.min(results.length - 1, i));
    results.forEach((r, j) => r.classList.toggle("selected", j === index));
    const link = results[index].querySelector("a.ident");
    results[index].scrollIntoView({ block: "nearest" });
    if (link) link.focus({ preventScroll: true });
  }
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const box = document.getElementById("q");
    if (e.key === "/" && box && !typing(e.target)) {
      e.preventDefault();
      box.focus();
      box.select();
      return;
    }
    const results = found();
    if (typing(e.target) || !results.length) return;
    if (e.key === "j") { e.preventDefault(); select(results, index + 1); }
    else if (e.key === "k") { e.preventDefault(); select(results, index - 1); }
    else if (e.key === "Enter" && index >= 0 && !(e.target && e.target.tagName === "A")) {
      window.location.href = results[index].dataset.href;
    }
  });
}

// -- sources: poll progress while something indexes -----------------------------------------
const POLL_MS = 1000;
function setupProgress() {
  const table = document.getElementById("sources");
  if (!table || !table.querySelector("tr[data-active]")) return;
  const url = window.location.pathname.replace(/\/sources\/?$/, "/sources/progress");
  async function poll() {
    let data;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      data = await response.json();
    } catch (err) {
      setTimeout(poll, POLL_MS * 3);
      return;
    }
    let active = false;
    for (const item of data.sources) {
      const row = table.querySelector(`tr[data-source="${CSS.escape(item.id)}"]`);
      if (!row) continue;
      const job = item.job;
      const busy = ["New", "Processing"].includes(item.state) || (job && ["New", "Processing"].includes(job.state));
      active = active || busy;
      const state = row.querySelector('[data-field="state"]');
      if (state) { state.textContent = item.state; state.className = "state state-" + item.state.toLowerCase(); }
      const reason = row.querySelector('[data-field="reason"]');
      if (reason) reason.textContent = item.stateReason || "";
      const files = row.querySelector('[data-field="files"]');
      if (files) files.textContent = String(item.files);
      if (job) {
        const bar = row.querySelector('[data-field="bar"]');
        if (bar) bar.value = job.percent;
        const text = row.querySelector('[data-field="progress"]');
        let line = `${job.phase || job.state} · ${job.percent.toFixed(1)}%`;
        if (job.filesTotal) line += ` · ${job.filesDone}/${job.filesTotal} files`;
        else if (job.unitsTotal) line += ` · ${job.unitsDone}/${job.unitsTotal} vectors`;
        if (text) text.textContent = line;
      }
      if (busy) row.dataset.active = "1"; else delete row.dataset.active;
    }
    if (active) setTimeout(poll, POLL_MS);
  }
  setTimeout(poll, POLL_MS);
}

// -- code: click a line number to mark it, shift-click to mark a range; the URL follows ------
function setupCode() {
  const table = document.getElementById("code");
  if (!table) return;
  const permalink = document.getElementById("permalink");
  let anchor = null;
  function mark(start, end) {
    table.querySelectorAll("tr.hit").forEach((tr) => tr.classList.remove("hit"));
    for (let n = start; n <= end; n++) {
      const tr = document.getElementById("L" + n);
      if (tr) tr.classList.add("hit");
    }
    const params = new URLSearchParams({ id: table.dataset.identifier });
    if (table.dataset.commit) params.set("commit", table.dataset.commit);
    params.set("lines", start === end ? String(start) : `${start}-${end}`);
    const url = `${window.location.pathname}?${params.toString()}#L${start}`;
    history.replaceState(null, "", url);
    if (permalink) permalink.href = url;
  }
  table.addEventListener("click", (e) => {
    const link = e.target.closest("a[data-line]");
    if (!link) return;
    e.preventDefault();
    const n = parseInt(link.dataset.line, 10);
    if (e.shiftKey && anchor !== null) mark(Math.min(anchor, n), Math.max(anchor, n));
    else { anchor = n; mark(n, n); }
  });
  const first = table.querySelector("tr.hit");
  if (first && !window.location.hash) first.scrollIntoView({ block: "center" });
}

// -- chat: stream the answer, then show the server's rendering -------------------------------
function listConversation(url, title) {
  // A conversation this page just started joins the list (a reload shows the server's titles).
  const list = document.querySelector(".conversations ul");
  if (!list || list.querySelector("li.current")) return;
  list.querySelectorAll("li.muted").forEach((li) => li.remove());
  const item = document.createElement("li");
  item.className = "current";
  const link = document.createElement("a");
  link.href = url;
  link.textContent = title;
  item.appendChild(link);
  list.prepend(item);
}

function setupChat() {
  const form = document.getElementById("ask");
  const turns = document.getElementById("turns");
  if (!form || !turns) return;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = new URLSearchParams(new FormData(form));
    const question = form.querySelector("textarea").value;
    const button = form.querySelector("button[type=submit]");
    const said = document.createElement("div");
    said.className = "turn user";
    const p = document.createElement("p");
    p.className = "said";
    p.textContent = question;
    said.appendChild(p);
    const reply = document.createElement("div");
    reply.className = "turn assistant";
    const answer = document.createElement("div");
    answer.className = "answer streaming";
    answer.setAttribute("aria-busy", "true");
    reply.appendChild(answer);
    turns.append(said, reply);
    button.disabled = true;
    try {
      const response = await fetch(form.dataset.stream, {
        method: "POST", body, credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "text/event-stream" },
      });
      if (!response.ok || !response.body) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const message = page.querySelector(".error");
        answer.textContent = message ? message.textContent : `Error ${response.status}`;
        answer.classList.add("error");
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const name = (frame.match(/^event: (.*)$/m) || [])[1];
          const data = (frame.match(/^data: (.*)$/m) || [])[1];
          if (!name || data === undefined) continue;
          const event = JSON.parse(data);
          if (name === "start") {
            form.querySelector('input[name="conversation"]').value = event.conversationId;
          } else if (name === "delta") {
            answer.textContent += event.text;
          } else if (name === "done") {
            answer.classList.remove("streaming");
            answer.classList.add("markdown");
            answer.innerHTML = event.html; // the server's sanitised rendering
            history.replaceState(null, "", event.url);
            listConversation(event.url, question);
          } else if (name === "error") {
            answer.textContent += "\n" + event.message;
            answer.classList.add("error");
          }
        }
      }
      form.querySelector("textarea").value = "";
    } finally {
      answer.removeAttribute("aria-busy");
      button.disabled = false;
    }
  });
}

// Loaded async (it never holds up the page's first paint): keys work from the moment it runs;
// what needs the whole document waits for it.
setupSearch();
function setupDocument() {
  setupProgress();
  setupCode();
  setupChat();
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setupDocument);
else setupDocument();
