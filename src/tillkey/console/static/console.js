// Tillkey console: the only script. Progressive: every form works without it.
// 1. Idle warning: a minute before the server ends the session, offer to stay signed in.
// 2. Role tree: checking a resource checks its whole subtree (the grant covers it anyway).
// 3. Destructive buttons ask in place: the first click turns the button into its question, the
//    second sends confirm=yes (without this script the server asks on a page of its own).
// 4. On a narrow screen the menu folds behind a button (without this script it simply shows).
(function () {
  "use strict";
  var body = document.body;
  var csrf = document.querySelector('meta[name="csrf-token"]');
  var warning = document.getElementById("idle-warning");
  var expiresIn = parseInt(body.getAttribute("data-expires-in") || "0", 10);
  var warnBefore = parseInt(body.getAttribute("data-warn-before") || "60", 10);
  var timers = [];

  function signIn() {
    window.location.assign("/console/login?reason=ended&next=" + encodeURIComponent(window.location.pathname));
  }

  function schedule(seconds) {
    timers.forEach(clearTimeout);
    timers = [];
    if (warning) { warning.hidden = true; }
    var warnAt = seconds > 2 * warnBefore ? seconds - warnBefore : seconds / 2;
    timers.push(setTimeout(function () { if (warning) { warning.hidden = false; } }, warnAt * 1000));
    timers.push(setTimeout(check, seconds * 1000 + 500));
  }

  // Only the server says a session is over (another tab may have kept it alive): a live one gets
  // a fresh schedule, an ended one answers with a redirect to the sign-in page.
  function check() {
    fetch("/console/session/status", { credentials: "same-origin", redirect: "manual", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) { schedule(d.expires_in); } else { signIn(); } })
      .catch(signIn);
  }

  if (warning && csrf && expiresIn > 0) {
    var form = warning.querySelector("form");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      fetch("/console/session/extend", {
        method: "POST", credentials: "same-origin", redirect: "manual",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" },
        body: "csrf=" + encodeURIComponent(csrf.getAttribute("content"))
      }).then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) { if (d) { schedule(d.expires_in); } else { signIn(); } })
        .catch(signIn);
    });
    schedule(expiresIn);
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-tree]"), function (tree) {
    tree.addEventListener("change", function (e) {
      var box = e.target;
      if (!box || box.type !== "checkbox") { return; }
      var parents = [box.value];
      Array.prototype.forEach.call(tree.querySelectorAll("input[type=checkbox]"), function (other) {
        if (parents.indexOf(other.getAttribute("data-parent")) >= 0) {
          other.checked = box.checked;
          parents.push(other.value);
        }
      });
    });
  });

  Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (form) {
    var button = form.querySelector("button[type=submit]");
    if (!button) { return; }
    var label = button.textContent;
    form.addEventListener("submit", function (e) {
      if (form.getAttribute("data-armed") === "1") { return; }
      e.preventDefault();
      var yes = document.createElement("input");
      yes.type = "hidden"; yes.name = "confirm"; yes.value = "yes";
      form.appendChild(yes);
      form.setAttribute("data-armed", "1");
      button.textContent = form.getAttribute("data-confirm") + " Click again";
      button.classList.add("armed");
      setTimeout(function () {
        form.removeChild(yes);
        form.removeAttribute("data-armed");
        button.textContent = label;
        button.classList.remove("armed");
      }, 6000);
    });
  });

  var nav = document.getElementById("console-nav");
  var toggle = nav && nav.querySelector(".menu-toggle");
  if (nav && toggle) {
    nav.classList.add("collapsible");
    toggle.hidden = false;
    var current = nav.querySelector('a[aria-current="page"]');
    if (current) { toggle.textContent = "Menu: " + current.textContent; }
    toggle.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
})();
