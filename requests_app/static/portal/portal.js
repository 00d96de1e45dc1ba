// Progressive enhancement only: every page works without JavaScript.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // Move focus to the error summary so keyboard and screen-reader users hear it first.
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }

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
    function text(id, value) { var el = document.getElementById(id); if (el) { el.textContent = value; } }
    function poll() {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          var p = d.progress || {};
          var status = document.getElementById("job-status");
          status.textContent = d.status; status.setAttribute("data-status", d.status);
          text("job-phase", p.phase || "");
          var bar = document.getElementById("job-progress-bar");
          if (p.total) { bar.max = p.total; bar.value = p.step || 0; }
          text("job-steps", (p.step || 0) + " / " + (p.total || "?"));
          text("job-eta", p.eta_seconds != null ? Math.round(p.eta_seconds) + " s" : "—");
          if (d.final) { document.getElementById("job-final-note").hidden = false; window.location.reload(); }
          else { window.setTimeout(poll, 2000); }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  });
})();
