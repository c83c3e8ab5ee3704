// Tillkey console: passkeys (WebAuthn) through navigator.credentials. Served from this origin, no
// library, no CDN. A form marked data-passkey="create" (register, /console/2fa) or "get" (sign in,
// /console/login/otp) asks the server for options (its data-options URL, with the form's CSRF
// token), runs the ceremony, puts the answer in the form's hidden fields and submits it. Without
// WebAuthn (or without this script) such forms stay hidden and the page works as before.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) { return; }

  function toBytes(text) {
    var s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer), s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function ids(list) {
    (list || []).forEach(function (c) { c.id = toBytes(c.id); });
    return list;
  }

  function options(form) {
    var body = new URLSearchParams();
    body.set("csrf", form.querySelector('input[name="csrf"]').value);
    return fetch(form.getAttribute("data-options"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" },
      body: body.toString()
    }).then(function (r) {
      if (!r.ok) { throw new Error("The server refused to start the passkey ceremony."); }
      return r.json();
    });
  }

  function created(c) {
    return {
      id: c.id, rawId: toText(c.rawId), type: c.type, authenticatorAttachment: c.authenticatorAttachment,
      clientExtensionResults: c.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(c.response.clientDataJSON),
        attestationObject: toText(c.response.attestationObject),
        transports: c.response.getTransports ? c.response.getTransports() : []
      }
    };
  }

  function asserted(c) {
    return {
      id: c.id, rawId: toText(c.rawId), type: c.type, authenticatorAttachment: c.authenticatorAttachment,
      clientExtensionResults: c.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(c.response.clientDataJSON),
        authenticatorData: toText(c.response.authenticatorData),
        signature: toText(c.response.signature),
        userHandle: c.response.userHandle ? toText(c.response.userHandle) : null
      }
    };
  }

  var conditional = null; // the pending autofill request, aborted when a button starts another

  function ceremony(kind, got, extra) {
    var o = got.options;
    o.challenge = toBytes(o.challenge);
    if (kind === "create") {
      o.user.id = toBytes(o.user.id);
      ids(o.excludeCredentials);
      return navigator.credentials.create({ publicKey: o }).then(created);
    }
    ids(o.allowCredentials);
    var request = { publicKey: o };
    if (extra) { for (var k in extra) { request[k] = extra[k]; } }
    return navigator.credentials.get(request).then(asserted);
  }

  function submitWith(form, got, credential) {
    form.querySelector('input[name="ceremony_id"]').value = got.ceremony_id;
    form.querySelector('input[name="credential"]').value = JSON.stringify(credential);
    HTMLFormElement.prototype.submit.call(form);
  }

  function say(form, text) {
    var status = form.querySelector("[data-passkey-status]");
    if (status) { status.textContent = text; }
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    var kind = form.getAttribute("data-passkey");
    form.hidden = false;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (conditional) { conditional.abort(); conditional = null; }
      say(form, "Waiting for your passkey…");
      options(form)
        .then(function (got) { return ceremony(kind, got).then(function (c) { submitWith(form, got, c); }); })
        .catch(function (err) { say(form, (err && err.message) || "The passkey ceremony did not finish."); });
    });
  });

  // Passwordless on /console/login: offer the browser's passkeys in the username field's
  // autofill (conditional mediation); choosing one signs in without the password.
  var auto = document.querySelector("form[data-passkey-autofill]");
  if (auto && PublicKeyCredential.isConditionalMediationAvailable) {
    PublicKeyCredential.isConditionalMediationAvailable().then(function (yes) {
      if (!yes) { return; }
      conditional = new AbortController();
      var signal = conditional.signal;
      options(auto).then(function (got) {
        return ceremony("get", got, { mediation: "conditional", signal: signal })
          .then(function (c) { submitWith(auto, got, c); });
      }).catch(function () { /* dismissed, aborted or refused: the forms are still there */ });
    });
  }
}());
