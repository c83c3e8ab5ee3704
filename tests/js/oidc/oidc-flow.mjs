// openid-client and jose (npm) against a live Tillkey, driven by tests/test_interop_oidc_node.py.
// PHASE=authorize: discovery, then an authorization URL with PKCE, state and nonce (printed with
//   the secrets the callback needs; the Python test signs in and consents like a browser).
// PHASE=callback: the code exchanged by openid-client (which checks state, iss and the ID token's
//   claims), the ID token and access token verified with jose against the published JWKS,
//   userinfo, client credentials for the service client, and introspection of both tokens.
// Output: one JSON object on stdout.
import * as client from "openid-client";
import * as jose from "jose";

const env = process.env;
const issuer = new URL(env.ISSUER);
const insecure = { execute: [client.allowInsecureRequests] }; // plain HTTP on loopback

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: err.error ?? err.code ?? err.name, message: String(err.message) };
  }
}

async function authorizePhase() {
  const config = await client.discovery(issuer, env.WEB_ID, env.WEB_SECRET, undefined, insecure);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: env.REDIRECT,
    scope: "openid profile email",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  });
  const meta = config.serverMetadata();
  return { url: url.href, verifier, state, nonce, discovered_issuer: meta.issuer, token_endpoint: meta.token_endpoint };
}

async function callbackPhase() {
  const out = {};
  const web = await client.discovery(issuer, env.WEB_ID, env.WEB_SECRET, undefined, insecure);
  const tokens = await client.authorizationCodeGrant(web, new URL(env.CALLBACK), {
    pkceCodeVerifier: env.VERIFIER,
    expectedState: env.STATE,
    expectedNonce: env.NONCE,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  out.id_token_claims = claims;

  const jwks = jose.createRemoteJWKSet(new URL(web.serverMetadata().jwks_uri));
  const idToken = await jose.jwtVerify(tokens.id_token, jwks, { issuer: issuer.origin, audience: env.WEB_ID });
  out.id_token_verified = { alg: idToken.protectedHeader.alg, nonce: idToken.payload.nonce, sub: idToken.payload.sub };
  const access = await jose.jwtVerify(tokens.access_token, jwks, {
    issuer: issuer.origin,
    audience: issuer.origin,
    typ: "at+jwt",
  });
  out.access_token_verified = { typ: access.protectedHeader.typ, client_id: access.payload.client_id, scope: access.payload.scope };
  out.id_token_as_access_token = await attempt(() =>
    jose.jwtVerify(tokens.id_token, jwks, { issuer: issuer.origin, typ: "at+jwt" }),
  );
  const info = await client.fetchUserInfo(web, tokens.access_token, claims.sub);
  out.userinfo = info;

  const svc = await client.discovery(issuer, env.SVC_ID, env.SVC_SECRET, undefined, insecure);
  const cc = await client.clientCredentialsGrant(svc, { scope: "Magento_Catalog::products" });
  out.client_credentials = { token_type: cc.token_type, scope: cc.scope, expires_in: cc.expires_in, refresh: "refresh_token" in cc };
  const ccVerified = await jose.jwtVerify(cc.access_token, jwks, { issuer: issuer.origin, typ: "at+jwt" });
  out.client_credentials_claims = ccVerified.payload;
  out.introspect_cc = await client.tokenIntrospection(svc, cc.access_token);
  out.introspect_user_token = await client.tokenIntrospection(svc, tokens.access_token);
  out.introspect_garbage = await client.tokenIntrospection(svc, "not-a-token");
  out.wrong_secret = await attempt(async () => {
    const bad = await client.discovery(issuer, env.SVC_ID, "tk_cs_wrong", undefined, insecure);
    return client.clientCredentialsGrant(bad, {});
  });
  return out;
}

const result = env.PHASE === "authorize" ? await authorizePhase() : await callbackPhase();
process.stdout.write(JSON.stringify(result) + "\n");
