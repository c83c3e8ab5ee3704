// @medusajs/js-sdk against data imported from a Medusa database (tests/test_import_medusa.py):
// the customer signs in with its Medusa password, and the original sk_ key lists API keys. Prints
// one JSON object of observations. Usage:
//   BASE=http://127.0.0.1:PORT EMAIL=… PASSWORD=… SECRET_KEY=sk_… PUBLISHABLE_KEY=pk_… node imported-flow.mjs
import Medusa from "@medusajs/js-sdk";

const { BASE, EMAIL, PASSWORD, SECRET_KEY, PUBLISHABLE_KEY } = process.env;
const out = {};
const attempt = async (f) => {
  try {
    return { ok: true, value: await f() };
  } catch (e) {
    return { ok: false, status: e.status, message: e.message };
  }
};

const shopper = new Medusa({ baseUrl: BASE, publishableKey: PUBLISHABLE_KEY, auth: { type: "jwt", jwtTokenStorageMethod: "memory" } });
out.login = await attempt(async () => typeof (await shopper.auth.login("customer", "emailpass", { email: EMAIL, password: PASSWORD })));
out.me = await attempt(async () => (await shopper.store.customer.retrieve()).customer.email);
const wrong = new Medusa({ baseUrl: BASE, publishableKey: PUBLISHABLE_KEY, auth: { type: "jwt", jwtTokenStorageMethod: "memory" } });
out.wrong_password = await attempt(() => wrong.auth.login("customer", "emailpass", { email: EMAIL, password: PASSWORD + "x" }));

const machine = new Medusa({ baseUrl: BASE, apiKey: SECRET_KEY });
out.keys = await attempt(async () => (await machine.admin.apiKey.list()).api_keys.map((k) => k.redacted).sort());
out.keys_again = await attempt(async () => (await machine.admin.apiKey.list()).count);
console.log(JSON.stringify(out));
