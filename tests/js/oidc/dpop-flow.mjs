// openid-client 6 with DPoP (RFC 9449) against a live Tillkey, driven by tests/test_interop_oidc_node.py.
// PHASE=authorize: discovery, then an authorization URL with PKCE and state for a public client.
// PHASE=callback: a DPoP key pair; the code exchanged with a proof (a DPoP-bound token and a bound
//   refresh token), userinfo and a protected Tillkey API call with proofs (DPoP scheme), the refresh
//   grant with the same key, then what another key or a bearer presentation gets.
// Output: one JSON object on stdout.
import * as client from "openid-client";

const env = process.env;
const issuer = new URL(env.ISSUER);
const insecure = { execute: [client.allowInsecureRequests] }; // plain HTTP on loopback

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: err.error ?? err.code ?? err.name, status: err.status ?? err.response?.status };
  }
}

async function config() {
  return client.discovery(issuer, env.SPA_ID, undefined, client.None(), insecure);
}

async function authorizePhase() {
  const spa = await config();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(spa, {
    redirect_uri: env.REDIRECT,
    scope: "openid Magento_Catalog::products",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
  });
  return { url: url.href, verifier, state, algs: spa.serverMetadata().dpop_signing_alg_values_supported };
}

async function callbackPhase() {
  const out = {};
  const spa = await config();
  const keys = await client.randomDPoPKeyPair("ES256");
  const DPoP = client.getDPoPHandle(spa, keys);
  const tokens = await client.authorizationCodeGrant(
    spa,
    new URL(env.CALLBACK),
    { pkceCodeVerifier: env.VERIFIER, expectedState: env.STATE, idTokenExpected: true },
    undefined,
    { DPoP },
  );
  out.token_type = tokens.token_type;
  const sub = tokens.claims().sub;
  out.userinfo = await client.fetchUserInfo(spa, tokens.access_token, sub, { DPoP });
  const api = new URL("/rest/V1/products?searchCriteria[pageSize]=1", issuer);
  const res = await client.fetchProtectedResource(spa, tokens.access_token, api, "GET", undefined, undefined, { DPoP });
  out.api_status = res.status;
  // The same token as a bearer token: refused.
  const bearer = await fetch(api, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
  out.bearer_status = bearer.status;
  out.bearer_challenge = bearer.headers.get("www-authenticate");
  // The refresh token with another key: refused; with the same key: a new bound token.
  const other = client.getDPoPHandle(spa, await client.randomDPoPKeyPair("ES256"));
  out.refresh_other_key = await attempt(() => client.refreshTokenGrant(spa, tokens.refresh_token, undefined, { DPoP: other }));
  const renewed = await client.refreshTokenGrant(spa, tokens.refresh_token, undefined, { DPoP });
  out.refreshed_token_type = renewed.token_type;
  const again = await client.fetchProtectedResource(spa, renewed.access_token, api, "GET", undefined, undefined, { DPoP });
  out.api_status_after_refresh = again.status;
  // The renewed token with the other key's proofs: refused.
  const stolen = await attempt(async () => {
    const r = await client.fetchProtectedResource(spa, renewed.access_token, api, "GET", undefined, undefined, { DPoP: other });
    return r.status;
  });
  out.api_other_key = stolen;
  return out;
}

const result = env.PHASE === "authorize" ? await authorizePhase() : await callbackPhase();
process.stdout.write(JSON.stringify(result) + "\n");
