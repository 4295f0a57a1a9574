// The live page: stream cards fed by server-sent events from /events (nothing
// is polled), and an MJPEG preview per watched stream. Browsers open about six
// connections per host, the event stream takes one, so at most MAX_WATCHED
// previews run at once; the others start with a click on "watch".
"use strict";

const MAX_WATCHED = 4;
const cards = new Map();  // stream id -> card element
const watched = new Set();
let source = null;

function text(card, selector, value) {
  card.querySelector(selector).textContent = value;
}

function percent(value) {
  return value === null ? "–" : `${(100 * value).toFixed(1)}%`;
}

function card(id) {
  let found = cards.get(id);
  if (found) return found;
  found = document.getElementById("stream-card").content.firstElementChild.cloneNode(true);
  found.dataset.id = id;
  text(found, ".id", id);
  found.querySelector(".watch").addEventListener("click", () => watch(id, !watched.has(id)));
  cards.set(id, found);
  const main = document.getElementById("streams");
  const after = [...cards.keys()].sort().find((other) => other > id);
  main.insertBefore(found, after ? cards.get(after) : null);
  if (watched.size < MAX_WATCHED) watch(id, true);
  return found;
}

function watch(id, on) {
  const element = cards.get(id);
  const img = element.querySelector(".preview");
  if (on && watched.size >= MAX_WATCHED) {
    watch([...watched][0], false);  // the oldest preview makes room
  }
  if (on) {
    watched.add(id);
    img.src = `/streams/${encodeURIComponent(id)}/preview.mjpeg`;
  } else {
    watched.delete(id);
    img.removeAttribute("src");  // closes the connection: the server stops rendering
  }
  element.querySelector(".watch").textContent = on ? "stop" : "watch";
}

function show(view) {
  const element = card(view.id);
  const state = element.querySelector(".state");
  state.textContent = view.state;
  state.className = `state state-${view.state}`;
  text(element, ".detail", view.detail);
  text(element, ".label", view.label ?? "–");
  text(element, ".score", view.score === null ? "–" : view.score.toFixed(2));
  text(element, ".saved", percent(view.compute_saved));
  text(element, ".fps", view.fps.toFixed(1));
}

function remove(id) {
  if (watched.has(id)) watch(id, false);
  cards.get(id)?.remove();
  cards.delete(id);
}

function status(message) {
  document.getElementById("connection").textContent = message;
}

function connect() {
  source = new EventSource("/events");
  source.addEventListener("open", () => status("live"));
  source.addEventListener("streams", (event) => {
    const streams = JSON.parse(event.data).streams;
    const ids = new Set(streams.map((view) => view.id));
    [...cards.keys()].filter((id) => !ids.has(id)).forEach(remove);
    streams.forEach(show);
  });
  source.addEventListener("stream", (event) => show(JSON.parse(event.data)));
  source.addEventListener("removed", (event) => remove(JSON.parse(event.data).id));
  source.addEventListener("error", async () => {
    status("reconnecting…");
    const answer = await fetch("/streams", { credentials: "same-origin" });
    if (answer.status === 401) {
      source.close();
      status("needs a token");
      document.getElementById("login").hidden = false;
    }
  });
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value.trim();
  const answer = await fetch("/session", {
    method: "POST", credentials: "same-origin", headers: { Authorization: `Bearer ${token}` },
  });
  if (answer.ok) {
    document.getElementById("login").hidden = true;
    document.getElementById("login-problem").textContent = "";
    [...watched].forEach((id) => watch(id, true));  // reload the previews with the cookie
    connect();
  } else {
    document.getElementById("login-problem").textContent = "that token is not accepted";
  }
});

connect();
