// A small signature pad (no library, no CDN): draw with a finger, a stylus or a mouse (pointer
// events) on <canvas data-signature-for="FIELD">; each stroke ends by writing the drawing as a PNG
// data URL into the form's hidden input named FIELD. <button data-clear-for="FIELD"> clears it.
// The background stays transparent, so the hub can tell an empty pad from a signed one.
(function () {
  "use strict";

  function setUp(canvas) {
    var field = canvas.getAttribute("data-signature-for");
    var form = canvas.closest("form");
    var input = form ? form.querySelector('input[name="' + field + '"]') : null;
    var ctx = canvas.getContext("2d");
    var drawing = false;
    var last = null;
    var inked = false;

    function size() {
      var ratio = Math.max(window.devicePixelRatio || 1, 1);
      var rect = canvas.getBoundingClientRect();
      canvas.width = Math.round(rect.width * ratio);
      canvas.height = Math.round(rect.height * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.lineWidth = 2.5;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.strokeStyle = "#000";
      inked = false;
      if (input) input.value = "";
    }

    function at(event) {
      var rect = canvas.getBoundingClientRect();
      return { x: event.clientX - rect.left, y: event.clientY - rect.top };
    }

    canvas.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      drawing = true;
      last = at(event);
      ctx.beginPath();
      ctx.arc(last.x, last.y, 1, 0, 2 * Math.PI);
      ctx.fill();
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!drawing) return;
      var events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
      for (var i = 0; i < events.length; i++) {
        var p = at(events[i]);
        ctx.beginPath();
        ctx.moveTo(last.x, last.y);
        ctx.lineTo(p.x, p.y);
        ctx.stroke();
        last = p;
      }
      inked = true;
    });
    function end() {
      if (!drawing) return;
      drawing = false;
      if (input && inked) {
        input.value = canvas.toDataURL("image/png");
        var all = form.querySelectorAll("input[data-signature]");
        var note = form.querySelector(".signature-missing");
        if (note && Array.prototype.every.call(all, function (i) { return i.value; })) note.hidden = true;
      }
      canvas.setAttribute("data-signed", inked ? "1" : "0");
    }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);

    document.querySelectorAll('[data-clear-for="' + field + '"]').forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        ctx.clearRect(0, 0, canvas.width, canvas.height);
        inked = false;
        if (input) input.value = "";
        canvas.setAttribute("data-signed", "0");
      });
    });
    size();
  }

  function start() {
    document.querySelectorAll("canvas[data-signature-for]").forEach(setUp);
    // a form with pads is sent only when every pad is signed: the hub checks again
    document.querySelectorAll("form[data-signatures]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        var empty = Array.prototype.filter.call(form.querySelectorAll("input[data-signature]"), function (i) {
          return !i.value;
        });
        var note = form.querySelector(".signature-missing");
        if (empty.length) {
          event.preventDefault();
          if (note) note.hidden = false;
        }
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
