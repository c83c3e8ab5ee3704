// A real OpenID provider (panva's oidc-provider, from npm) for Tillkey's federation tests.
// Configured from the environment by tests/federation_support.py:
//   OP_PORT      loopback port to listen on
//   OP_CLIENTS   JSON list of client metadata (client_id, client_secret, redirect_uris)
//   OP_ACCOUNTS  JSON file: account id -> {"claims": {...}, "amr": [...]}, read at every sign-in
//                (a test edits it to change a user's groups at the provider)
// The login page is ours (devInteractions off): POST /interaction/<uid> with account=<id> signs
// that account in; consent is granted automatically for the scopes and claims asked for.
// Prints "READY <issuer>" once listening.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.OP_CLIENTS || '[]');
const accountsFile = process.env.OP_ACCOUNTS;
const accountsNow = () => JSON.parse(readFileSync(accountsFile, 'utf8'));

const provider = new Provider(issuer, {
  clients,
  claims: {
    openid: ['sub', 'amr'],  // amr: which factors the provider checked (RFC 8176)
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Put the scope's claims in the ID token itself, as Entra ID and Google do.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ['tillkey-test-op-cookie-key'] },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const account = accountsNow()[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account.claims }; } };
  },
});

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(body))));
    req.on('error', reject);
  });
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (details.prompt.name === 'login') {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<form method="post" action="/interaction/${uid}"><input name="account"><button>Sign in</button></form>`);
      return;
    }
    const form = await readForm(req);
    const account = accountsNow()[form.account];
    if (!account) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('no such account');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: form.account, amr: account.amr || ['pwd'] } },
      { mergeWithLastSubmission: false });
    return;
  }
  // consent: grant what was asked
  const { prompt: { details: missing }, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const match = /^\/interaction\/([^/?]+)/.exec(req.url);
  if (!match) {
    callback(req, res);
    return;
  }
  interaction(req, res, match[1]).catch((err) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(err));
  });
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
