// Drives @medusajs/js-sdk's `sdk.auth.verification.*` against a live Tillkey server run with
// TILLKEY_CUSTOMER_EMAIL_VERIFICATION=required and TILLKEY_ADMIN_EMAIL_VERIFICATION=required, for an
// admin and a customer, and prints one JSON object of observations for
// tests/test_medusa_sdk.py. The code is read from the outbox file, as a mailer would deliver it.
//   BASE=… EMAIL=… PASSWORD=… CUSTOMER_EMAIL=… CUSTOMER_PASSWORD=… OUTBOX=… node verification-flow.mjs
import { readFileSync } from "node:fs";
import Medusa from "@medusajs/js-sdk";

const { BASE, EMAIL, PASSWORD, CUSTOMER_EMAIL, CUSTOMER_PASSWORD, OUTBOX } = process.env;
const out = {};
const jwt = { type: "jwt", jwtTokenStorageMethod: "memory" };

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, status: e.status, message: e.message };
  }
}

function lastCode() {
  const lines = readFileSync(OUTBOX, "utf8").trim().split("\n");
  const mail = JSON.parse(lines[lines.length - 1]);
  return { kind: mail.kind, to: mail.to, code: mail.code };
}

// The admin first (TILLKEY_ADMIN_EMAIL_VERIFICATION=required too): the same flow for actor "user".
const admin = new Medusa({ baseUrl: BASE, auth: jwt });
const adminLogin = await admin.auth.login("user", "emailpass", { email: EMAIL, password: PASSWORD });
out.admin_login = { verification_required: adminLogin.verification_required };
out.admin_me_pending = await attempt(() => admin.admin.user.me());
await admin.auth.verification.request({ entity_id: EMAIL, entity_type: "email" });
const adminMail = lastCode();
out.admin_mail = { kind: adminMail.kind, to: adminMail.to };
const adminConfirmed = await admin.auth.verification.confirm({ code: adminMail.code });
out.admin_confirmed = { entity_id: adminConfirmed.entity_id, verified: !!adminConfirmed.verified_at };
out.admin_login_after = typeof (await admin.auth.login("user", "emailpass", { email: EMAIL, password: PASSWORD }));
out.admin_me = (await admin.admin.user.me()).user.email;
const pub = (await admin.admin.apiKey.create({ title: "verification storefront", type: "publishable" })).api_key;

const store = new Medusa({ baseUrl: BASE, publishableKey: pub.token, auth: jwt });
await store.auth.register("customer", "emailpass", { email: CUSTOMER_EMAIL, password: CUSTOMER_PASSWORD });
await store.store.customer.create({ email: CUSTOMER_EMAIL, first_name: "Verified", last_name: "Buyer" });
const refreshed = await store.auth.refresh();
out.refresh = { verification_required: refreshed.verification_required, entity_id: refreshed.verification?.entity_id };
out.retrieve_pending = await attempt(() => store.store.customer.retrieve());

// Login answers the same until the address is verified; the SDK keeps the pending token.
const login = await store.auth.login("customer", "emailpass", { email: CUSTOMER_EMAIL, password: CUSTOMER_PASSWORD });
out.login = { verification_required: login.verification_required, entity_type: login.verification?.entity_type };
const requested = await store.auth.verification.request({ entity_id: CUSTOMER_EMAIL, entity_type: "email" });
out.requested = { entity_id: requested.verification.entity_id, code_provider: requested.verification.code_provider };
const mail = lastCode();
out.mail = { kind: mail.kind, to: mail.to };
out.wrong = await attempt(() => store.auth.verification.confirm({ code: "tk_ev_wrong" }));
const confirmed = await store.auth.verification.confirm({ code: mail.code });
out.confirmed = { entity_id: confirmed.entity_id, entity_type: confirmed.entity_type, verified: !!confirmed.verified_at };
out.replayed = await attempt(() => store.auth.verification.confirm({ code: mail.code }));

const token = await store.auth.login("customer", "emailpass", { email: CUSTOMER_EMAIL, password: CUSTOMER_PASSWORD });
out.login_after = typeof token;
out.customer_email = (await store.store.customer.retrieve()).customer.email;

console.log(JSON.stringify(out));
