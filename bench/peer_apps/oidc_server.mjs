// The node oidc-provider peer of `make bench-peers` (bench/peers.py). bench/peers.py copies this file
// next to its node_modules in the peers' scratch folder and runs it there.
//
// One confidential client (client_secret_basic) allowed the client_credentials grant, and token
// introspection enabled; everything else is the library's default, including its in-memory adapter.
// ACCESS_TOKEN_FORMAT picks the client-credentials access token, so that Tillkey is compared with
// the same format it issues:
//   opaque (default): the library's default, an opaque token kept in its in-memory store;
//   jwt: an ES256-signed JWT (RFC 9068 `at+jwt`), through the resource indicators feature, which is
//        how oidc-provider chooses a token format: every request is given one resource server by
//        default, whose access tokens are JWTs signed with the ES256 key below. oidc-provider keeps
//        no record of these, so its introspection endpoint answers them as inactive.
// Fresh signing and cookie keys per start, so no development keys are used.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const format = process.env.ACCESS_TOKEN_FORMAT || 'opaque';
if (!['opaque', 'jwt'].includes(format)) throw new Error(`ACCESS_TOKEN_FORMAT=${format}: opaque or jwt`);

async function signingKey(alg, kid) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), use: 'sig', alg, kid };
}
// RS256 stays the ID token default; ES256 signs the JWT access tokens.
const keys = [await signingKey('RS256', 'bench-rs'), await signingKey('ES256', 'bench-es')];

const resource = 'https://api.bench.example/';
const resourceIndicators = format === 'jwt' ? {
  enabled: true,
  defaultResource: () => resource,
  useGrantedResource: () => true,
  getResourceServerInfo: () => ({
    scope: '',
    audience: resource,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  }),
} : { enabled: false };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators,
  },
  jwks: { keys },
  ttl: { ClientCredentials: 900 }, // Tillkey's oauth2_access_token_ttl, in both formats
  cookies: { keys: [randomBytes(32).toString('hex')] },
});

createServer(provider.callback()).listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on 127.0.0.1:${port} (${format} access tokens)`);
});
