// Drives @medusajs/js-sdk's `sdk.auth.mfa.*` against a live Tillkey server, for an admin ("user")
// and a customer, and prints one JSON object of observations for tests/test_medusa_sdk.py.
//   BASE=… EMAIL=… PASSWORD=… CUSTOMER_EMAIL=… CUSTOMER_PASSWORD=… node mfa-flow.mjs
// TOTP codes (RFC 6238: HMAC-SHA-1, 30 s, 6 digits) come from node:crypto, as an app computes
// them. Enrolment spends the current step's code and the challenge the next step's (the server
// accepts ±1 step), so the challenge needs no wait (a step is never accepted twice) and either
// code still holds if a step ends between computing it and the server checking it.
import { createHmac } from "node:crypto";
import Medusa from "@medusajs/js-sdk";

const { BASE, EMAIL, PASSWORD, CUSTOMER_EMAIL, CUSTOMER_PASSWORD } = process.env;
const out = {};

function base32(secret) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function totp(secret, stepOffset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + stepOffset;
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32(secret)).update(msg).digest();
  const o = mac[mac.length - 1] & 0xf;
  const n = ((mac[o] & 0x7f) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3];
  return String(n % 1_000_000).padStart(6, "0");
}

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, status: e.status, message: e.message };
  }
}

async function enrol(sdk) {
  const started = await sdk.auth.mfa.start({ provider: "totp" });
  const verified = await sdk.auth.mfa.verify(started.mfa_factor.id, { code: totp(started.secret) });
  const { recovery_codes } = await sdk.auth.mfa.generateRecoveryCodes();
  const { mfa_factors } = await sdk.auth.mfa.list();
  return { secret: started.secret, started, verified: verified.mfa_factor, recovery_codes, mfa_factors };
}

const jwt = { type: "jwt", jwtTokenStorageMethod: "memory" };

// --- admin: enrol, sign in again through the challenge with a TOTP code ------------------------
const admin = new Medusa({ baseUrl: BASE, auth: jwt });
await admin.auth.login("user", "emailpass", { email: EMAIL, password: PASSWORD });
const pub = (await admin.admin.apiKey.create({ title: "mfa storefront", type: "publishable" })).api_key;
const a = await enrol(admin);
out.admin_started = { status: a.started.mfa_factor.status, url: a.started.otpauth_url.slice(0, 15) };
out.admin_verified = a.verified.status;
out.admin_factors = a.mfa_factors.map((f) => [f.provider, f.status]);
out.admin_recovery_codes = a.recovery_codes.length;
await admin.auth.logout();
const adminLogin = await admin.auth.login("user", "emailpass", { email: EMAIL, password: PASSWORD });
out.admin_login = { mfa_required: adminLogin.mfa_required, methods: adminLogin.mfa_challenge?.methods };
out.admin_me_pending = await attempt(() => admin.admin.user.me());
out.admin_wrong_code = await attempt(() =>
  admin.auth.mfa.verifyChallenge(adminLogin.mfa_challenge.id, { method: "totp", code: "000000" === totp(a.secret, 1) ? "111111" : "000000" }),
);
out.admin_token = await admin.auth.mfa.verifyChallenge(adminLogin.mfa_challenge.id, { method: "totp", code: totp(a.secret, 1) });
out.admin_me = (await admin.admin.user.me()).user.email;
out.admin_refresh = await attempt(() => admin.auth.refresh());
out.admin_disable = await attempt(() => admin.auth.mfa.disable(a.mfa_factors[0].id));

// --- customer: register, enrol, sign in again with a recovery code, disable --------------------
const store = new Medusa({ baseUrl: BASE, publishableKey: pub.token, auth: jwt });
await store.auth.register("customer", "emailpass", { email: CUSTOMER_EMAIL, password: CUSTOMER_PASSWORD });
await store.store.customer.create({ email: CUSTOMER_EMAIL, first_name: "Mfa", last_name: "Buyer" });
await store.auth.refresh();
const c = await enrol(store);
out.customer_factors = c.mfa_factors.map((f) => [f.provider, f.status]);
await store.auth.logout();
const customerLogin = await store.auth.login("customer", "emailpass", { email: CUSTOMER_EMAIL, password: CUSTOMER_PASSWORD });
out.customer_login = { mfa_required: customerLogin.mfa_required, id: customerLogin.mfa_challenge?.id?.slice(0, 12) };
out.customer_retrieve_pending = await attempt(() => store.store.customer.retrieve());
out.customer_token = await store.auth.mfa.verifyChallenge(customerLogin.mfa_challenge.id, {
  method: "recovery_code",
  code: c.recovery_codes[0],
});
out.customer_email = (await store.store.customer.retrieve()).customer.email;
out.customer_disable = await attempt(async () => (await store.auth.mfa.disable(c.mfa_factors[0].id)).mfa_factor.status);
out.customer_factors_after = (await store.auth.mfa.list()).mfa_factors.length;
await store.auth.logout();
const plain = await store.auth.login("customer", "emailpass", { email: CUSTOMER_EMAIL, password: CUSTOMER_PASSWORD });
out.customer_login_after_disable = typeof plain;

console.log(JSON.stringify(out));
