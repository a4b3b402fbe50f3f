// The 叫号屏: new calls arrive by server-sent events and are shown at once, without a reload.
// EventSource reconnects by itself after a dropped stream and sends Last-Event-ID, so the server
// replays what was missed; when the server refused the stream (full, or restarting) we open a new
// one after a pause, from the last call we showed. Text only: nothing from the stream is markup.
"use strict";

(function () {
  const body = document.body;
  const desk = body.dataset.desk;
  const en = body.dataset.lang === "en";
  const list = document.getElementById("calls");
  const nowNumber = document.getElementById("now-number");
  const nowCounter = document.getElementById("now-counter");
  const linkState = document.getElementById("link-state");
  const KEEP = 8;
  let last = Number(body.dataset.after || "0");
  // ids shown: a call that committed late may come after a higher id (never shown twice)
  const seen = new Set(Array.from(list.children, (li) => Number(li.dataset.id)));

  function show(call) {
    if (seen.has(call.id)) return;
    seen.add(call.id);
    last = Math.max(last, call.id);
    if (call.kind !== "no_show") {
      nowNumber.textContent = call.number;
      nowCounter.textContent = call.counter;
    }
    const li = document.createElement("li");
    li.dataset.id = String(call.id);
    li.className = "kind-" + call.kind;
    const n = document.createElement("span");
    n.className = "n";
    n.textContent = call.number;
    const c = document.createElement("span");
    c.className = "c";
    c.textContent = call.counter;
    li.append(n, " ", c);
    list.prepend(li);
    while (list.children.length > KEEP) list.lastElementChild.remove();
  }

  function connect() {
    const source = new EventSource(`/display/${encodeURIComponent(desk)}/events?after=${last}`);
    source.addEventListener("call", (e) => show(JSON.parse(e.data)));
    source.onopen = () => { linkState.textContent = ""; };
    source.onerror = () => {
      linkState.textContent = en ? "Reconnecting…" : "正在重新连接…";
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    };
  }
  connect();
})();
