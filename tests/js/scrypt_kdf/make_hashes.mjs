// Medusa emailpass password hashes, made as @medusajs/auth-emailpass makes them: base64 of
// scrypt-kdf's blob at logN 15, r 8, p 1 (medusa.md §5). The salt is random, so this is run once:
//   (cd tests/js/scrypt_kdf && npm ci && node make_hashes.mjs > ../../vectors/legacy_hashes/medusa.json)
import Scrypt from 'scrypt-kdf';

const cases = [
  ['emailpass, default parameters', 'Medusa-Passw0rd!', { logN: 15, r: 8, p: 1 }],
  ['emailpass, non-ASCII password', 'Pässwörd-ünïcode-€', { logN: 15, r: 8, p: 1 }],
  ['cheaper parameters (logN 10, r 8, p 2)', 'Medusa-cheap', { logN: 10, r: 8, p: 2 }],
];
const vectors = [];
for (const [name, password, params] of cases) {
  const blob = await Scrypt.kdf(password, params);
  vectors.push({ name, password, hash: Buffer.from(blob).toString('base64') });
}
console.log(JSON.stringify({ generator: `scrypt-kdf 4.0.0, Node ${process.version}`, vectors }, null, 4));
