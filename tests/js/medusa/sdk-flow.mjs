// Drives the official @medusajs/js-sdk against a live Tillkey server and prints one JSON object
// of observations for tests/test_medusa_sdk.py to assert on. Usage:
//   BASE=http://127.0.0.1:PORT EMAIL=… PASSWORD=… CUSTOMER_EMAIL=… node sdk-flow.mjs
// Node's fetch keeps no cookies, so session mode gets a minimal cookie jar around the global
// fetch (what a browser does for it); the server sees exactly what a browser would send.
import Medusa from "@medusajs/js-sdk";

const { BASE, EMAIL, PASSWORD, CUSTOMER_EMAIL, CUSTOMER_PASSWORD } = process.env;
const out = {};
const jar = new Map();
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  if (jar.size && init.credentials === "include") {
    headers.set("cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
  }
  const resp = await realFetch(input, { ...init, headers });
  for (const line of resp.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(";");
    const i = pair.indexOf("=");
    const name = pair.slice(0, i).trim();
    const value = pair.slice(i + 1).trim();
    const expired = attrs.some((a) => /expires=thu, 01 jan 1970/i.test(a.trim()));
    if (!value || expired) jar.delete(name);
    else jar.set(name, value);
    out.cookie_attributes = attrs.map((a) => a.trim().split("=")[0].toLowerCase());
  }
  return resp;
};

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, status: e.status, message: e.message };
  }
}

// --- JWT mode: admin login, me, API key create -> use -> revoke -> refused ----------------------
const jwtSdk = new Medusa({ baseUrl: BASE, auth: { type: "jwt", jwtTokenStorageMethod: "memory" } });
out.bad_login = await attempt(() => jwtSdk.auth.login("user", "emailpass", { email: EMAIL, password: "wrong-password" }));
const token = await jwtSdk.auth.login("user", "emailpass", { email: EMAIL, password: PASSWORD });
out.jwt_token = typeof token === "string" ? token : null;
out.jwt_me = (await jwtSdk.admin.user.me()).user;

const created = (await jwtSdk.admin.apiKey.create({ title: "sdk secret", type: "secret" })).api_key;
out.key_created = { id: created.id, redacted: created.redacted, token_prefix: created.token.slice(0, 3) };
const keySdk = new Medusa({ baseUrl: BASE, apiKey: created.token });
out.key_list = await attempt(async () => (await keySdk.admin.apiKey.list()).count);
const pub = (await jwtSdk.admin.apiKey.create({ title: "sdk storefront", type: "publishable" })).api_key;
out.revoked = (await jwtSdk.admin.apiKey.revoke(created.id)).api_key.revoked_at;
out.key_after_revoke = await attempt(async () => (await keySdk.admin.apiKey.list()).count);
await jwtSdk.auth.logout(); // jwt mode: no HTTP call, the token is forgotten
out.me_after_jwt_logout = await attempt(() => jwtSdk.admin.user.me());

// --- session mode: login makes a cookie session, logout ends it -------------------------------
const sessionSdk = new Medusa({ baseUrl: BASE, auth: { type: "session" } });
await sessionSdk.auth.login("user", "emailpass", { email: EMAIL, password: PASSWORD });
out.session_cookie = jar.has("connect.sid");
out.session_me = await attempt(async () => (await sessionSdk.admin.user.me()).user.email);
await sessionSdk.auth.logout();
out.session_cookie_after_logout = jar.has("connect.sid");
out.session_me_after_logout = await attempt(() => sessionSdk.admin.user.me());

// --- customer: register -> create -> refresh -> retrieve ---------------------------------------
const store = new Medusa({ baseUrl: BASE, publishableKey: pub.token, auth: { type: "jwt", jwtTokenStorageMethod: "memory" } });
const regToken = await store.auth.register("customer", "emailpass", { email: CUSTOMER_EMAIL, password: CUSTOMER_PASSWORD });
out.registration_token = regToken;
out.me_with_registration_token = await attempt(() => store.store.customer.retrieve());
const customer = (await store.store.customer.create({ email: CUSTOMER_EMAIL, first_name: "Sdk", last_name: "Buyer" })).customer;
out.customer_created = { id: customer.id, email: customer.email };
const refreshed = await store.auth.refresh();
out.refreshed_token = refreshed.token;
out.customer_me = (await store.store.customer.retrieve()).customer;
out.duplicate_register = await attempt(() =>
  new Medusa({ baseUrl: BASE, auth: { jwtTokenStorageMethod: "memory" } }).auth.register("customer", "emailpass", {
    email: CUSTOMER_EMAIL, password: CUSTOMER_PASSWORD,
  }));
const noKey = new Medusa({ baseUrl: BASE, auth: { jwtTokenStorageMethod: "memory" } });
out.store_without_publishable_key = await attempt(() => noKey.store.customer.retrieve());
out.reset = await attempt(() => noKey.auth.resetPassword("customer", "emailpass", { identifier: "nobody@example.com" }));

console.log(JSON.stringify(out));
