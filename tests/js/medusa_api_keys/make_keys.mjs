// Medusa secret and publishable API keys, stored as @medusajs/api-key 2.21.2 stores them
// (dist/services/api-key-module-service.js: generateSecretKey, generatePublishableKey,
// calculateHash = hex(crypto.scrypt(token, salt, 64)) with Node's defaults, redactKey). Node's own
// crypto, as Medusa uses it; random like Medusa's, so this is run once:
//   node tests/js/medusa_api_keys/make_keys.mjs > tests/vectors/medusa_api_keys/keys.json
import crypto from 'node:crypto';
import util from 'node:util';

const scrypt = util.promisify(crypto.scrypt);
const redactKey = (key) => [key.slice(0, 6), key.slice(-3)].join('***');

async function secretKey() {
  const token = 'sk_' + crypto.randomBytes(32).toString('hex');
  const salt = crypto.randomBytes(16).toString('hex');
  const hashed = (await scrypt(token, salt, 64)).toString('hex');
  return { raw: token, token: hashed, salt, redacted: redactKey(token) };
}

function publishableKey() {
  const token = 'pk_' + crypto.randomBytes(32).toString('hex');
  return { raw: token, token, salt: '', redacted: redactKey(token) };
}

const keys = [
  { name: 'secret key in use', type: 'secret', ...(await secretKey()) },
  { name: 'secret key revoked', type: 'secret', ...(await secretKey()) },
  { name: 'publishable key', type: 'publishable', ...publishableKey() },
];
console.log(JSON.stringify({ generator: `Node ${process.version} crypto.scrypt, as @medusajs/api-key 2.21.2`, keys }, null, 4));
