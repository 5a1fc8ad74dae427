// winmdm pages: small progressive enhancements. Every form works without this file; the server
// checks everything again.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: data-copy names the input whose value is copied.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      if (!input) return;
      var done = function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
      } else {
        input.select();
        document.execCommand("copy");
        done();
      }
    });
  });

  // Confirmations: data-confirm on a form asks before it is sent.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  // Typed confirmation: the button stays off until the input holds exactly data-expect.
  document.querySelectorAll("[data-expect]").forEach(function (input) {
    var button = document.getElementById(input.getAttribute("data-enables"));
    if (!button) return;
    var update = function () { button.disabled = input.value.trim() !== input.getAttribute("data-expect"); };
    input.addEventListener("input", update);
    update();
  });

  // Filters: changing a select sends its form.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  windowsMdmForm();
});

// Settings > MDM > Windows: the end-user experience shows only while Windows MDM is on, and the
// migration checkbox only for Automatic. A hidden choice is not sent (disabled), and Manual
// clears the migration box (restored if Automatic comes back before saving).
function windowsMdmForm() {
  var toggle = document.getElementById("windows_enabled");
  var section = document.getElementById("end-user-experience");
  if (!toggle || !section) return;
  var automatic = document.getElementById("eux-automatic");
  var manual = document.getElementById("eux-manual");
  var migrationRow = document.getElementById("migration-row");
  var migration = document.getElementById("migration");
  var remembered = migration ? migration.checked : false;

  var update = function () {
    var on = toggle.checked;
    section.hidden = !on;
    section.querySelectorAll("input").forEach(function (input) { input.disabled = !on; });
    if (!migrationRow || !migration) return;
    var showMigration = on && automatic && automatic.checked;
    if (!showMigration && !migrationRow.hidden) remembered = migration.checked;
    if (showMigration && migrationRow.hidden) migration.checked = remembered;
    migrationRow.hidden = !showMigration;
    migration.disabled = !showMigration;
    if (!showMigration) migration.checked = false;
  };
  toggle.addEventListener("change", update);
  if (automatic) automatic.addEventListener("change", update);
  if (manual) manual.addEventListener("change", update);
  update();
}
