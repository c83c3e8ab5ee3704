// An integration written in Node with the oauth-1.0a package (not Tillkey's code): it finishes the
// activation handshake Tillkey posted to its endpoint, then makes signed REST calls. Prints one JSON
// object for tests/test_interop_oauth1_node.py to assert on.
//
// Environment: TILLKEY_URL, CONSUMER_KEY, CONSUMER_SECRET, VERIFIER (what Tillkey posted).
'use strict';

const crypto = require('crypto');
const OAuth = require('oauth-1.0a');

const base = process.env.TILLKEY_URL;
const oauth = OAuth({
  consumer: { key: process.env.CONSUMER_KEY, secret: process.env.CONSUMER_SECRET },
  signature_method: 'HMAC-SHA256',
  hash_function: (text, key) => crypto.createHmac('sha256', key).update(text).digest('base64'),
});

async function post(path, token, data) {
  const request = { url: base + path, method: 'POST', data: data || {} };
  const headers = oauth.toHeader(oauth.authorize(request, token));
  headers['Content-Type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(request.url, {
    method: 'POST', headers, body: new URLSearchParams(request.data).toString(), redirect: 'error',
  });
  return { status: res.status, form: Object.fromEntries(new URLSearchParams(await res.text())) };
}

async function get(url, token) {
  const headers = oauth.toHeader(oauth.authorize({ url, method: 'GET' }, token));
  const res = await fetch(url, { headers, redirect: 'error' });
  return { status: res.status, body: await res.json(), headers };
}

async function main() {
  const requested = await post('/oauth/token/request');
  const requestToken = { key: requested.form.oauth_token, secret: requested.form.oauth_token_secret };
  // The verifier travels in the signed form body (oauth-1.0a puts only its own parameters in the header).
  const access = await post('/oauth/token/access', requestToken, { oauth_verifier: process.env.VERIFIER });
  const token = { key: access.form.oauth_token, secret: access.form.oauth_token_secret };
  const url = base + '/rest/V1/products?searchCriteria[pageSize]=3&searchCriteria[currentPage]=1';
  const products = await get(url, token);
  // The very same Authorization header again: a replayed nonce.
  const replay = await fetch(url, { headers: products.headers, redirect: 'error' });
  const wrong = OAuth({
    consumer: { key: process.env.CONSUMER_KEY, secret: 'not-the-secret' },
    signature_method: 'HMAC-SHA256',
    hash_function: (text, key) => crypto.createHmac('sha256', key).update(text).digest('base64'),
  });
  const forged = await fetch(url, { headers: wrong.toHeader(wrong.authorize({ url, method: 'GET' }, token)) });
  console.log(JSON.stringify({
    request_status: requested.status,
    request_token_length: (requestToken.key || '').length,
    access_status: access.status,
    access_problem: access.form.oauth_problem,
    access_token_length: (token.key || '').length,
    products_status: products.status,
    skus: (products.body.items || []).map((p) => p.sku),
    total_count: products.body.total_count,
    replay_status: replay.status,
    replay_body: await replay.json(),
    forged_status: forged.status,
    forged_body: await forged.json(),
  }));
}

main().catch((err) => { console.error(err); process.exit(1); });
