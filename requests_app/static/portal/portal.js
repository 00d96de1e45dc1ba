// Progressive enhancement only: every page works without JavaScript.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // Move focus to the error summary so keyboard and screen-reader users hear it first.
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }

    // Dates: the server writes UTC; show them in the reader's locale and time zone (zone always named).
    if (window.Intl && Intl.DateTimeFormat) {
      var opts = { year: "numeric", month: "short", day: "numeric" };
      var withTime = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
      document.querySelectorAll("time[data-local]").forEach(function (el) {
        var d = new Date(el.getAttribute("datetime"));
        if (isNaN(d.getTime())) { return; }
        try {
          var full = new Intl.DateTimeFormat(undefined, withTime).format(d);
          el.title = full;
          el.textContent = el.getAttribute("data-local") === "date" ? new Intl.DateTimeFormat(undefined, opts).format(d) : full;
        } catch (e) { /* keep the server's UTC text */ }
      });
    }

    // "Tick all" / "Tick none" for the record checkboxes.
    document.querySelectorAll("[data-check-all],[data-check-none]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var name = btn.getAttribute("data-check-all") || btn.getAttribute("data-check-none");
        var on = btn.hasAttribute("data-check-all");
        document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (c) { c.checked = on; });
      });
    });

    // Job progress: poll the small JSON endpoint until the job is final.
    var box = document.querySelector("[data-progress-url]");
    if (!box || box.getAttribute("data-final") === "true") { return; }
    var url = box.getAttribute("data-progress-url");
    function duration(s) {
      s = Math.round(s);
      if (s < 60) { return s + " s"; }
      if (s < 3600) { return Math.floor(s / 60) + " min " + (s % 60) + " s"; }
      return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    }
    function text(id, value) { var el = document.getElementById(id); if (el) { el.textContent = value; } }
    function poll() {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          var p = d.progress || {};
          var status = document.getElementById("job-status");
          status.textContent = d.status_label || d.status; status.setAttribute("data-status", d.status);
          text("job-phase", p.phase_label || p.phase || "");
          var bar = document.getElementById("job-progress-bar");
          if (p.total) { bar.max = p.total; bar.value = p.step || 0; }
          text("job-steps", (p.step || 0) + " / " + (p.total || "?"));
          text("job-eta", p.eta_seconds != null ? duration(p.eta_seconds) : "—");
          if (d.final) { document.getElementById("job-final-note").hidden = false; window.location.reload(); }
          else { window.setTimeout(poll, 2000); }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  });
})();
