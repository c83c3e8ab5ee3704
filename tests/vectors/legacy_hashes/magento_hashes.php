<?php
// Magento password hashes made the way Magento's Encryptor and its tools make them, so the tests of
// Tillkey's verifier do not check it against its own output (magento-migration.md §A.4):
//   php tests/vectors/legacy_hashes/magento_hashes.php > tests/vectors/legacy_hashes/magento.json
// Salts are fixed (Magento draws 32 characters of [A-Za-z0-9]), so the output is reproducible.

const ARGON_LATEST = '3_32_2_67108864';

// One version's step: what Encryptor::hash does for it (0 md5, 1 sha256, 2 and 3_* Argon2id13).
function step(string $version, string $data, string $salt): string {
    if ($version === '0') { return md5($salt . $data); }
    if ($version === '1') { return hash('sha256', $salt . $data); }
    if ($version === '2') { [$len, $ops, $mem] = [SODIUM_CRYPTO_SIGN_SEEDBYTES, SODIUM_CRYPTO_PWHASH_OPSLIMIT_INTERACTIVE, SODIUM_CRYPTO_PWHASH_MEMLIMIT_INTERACTIVE]; }
    else { [, $len, $ops, $mem] = array_map('intval', explode('_', $version)); }
    // libsodium wants a 16-byte salt: Magento cuts a longer one and repeats a shorter one.
    if (strlen($salt) < SODIUM_CRYPTO_PWHASH_SALTBYTES) { $salt = str_pad($salt, SODIUM_CRYPTO_PWHASH_SALTBYTES, $salt); }
    else { $salt = substr($salt, 0, SODIUM_CRYPTO_PWHASH_SALTBYTES); }
    return bin2hex(sodium_crypto_pwhash($len, $data, $salt, $ops, $mem, SODIUM_CRYPTO_PWHASH_ALG_ARGON2ID13));
}

// A stored value "hash:salt:v1[:v2…]": the first version hashes the password, and each later one
// re-hashes the stored hash, as `bin/magento customer:hash:upgrade` does.
function stored(string $password, string $salt, array $versions): string {
    $hash = $password;
    foreach ($versions as $v) { $hash = step($v, $hash, $salt); }
    return $hash . ':' . $salt . ':' . implode(':', $versions);
}

$salt = 'q2NcE7vLpX9aTzR4mWbY1kHdF6gJsU3o';
$cases = [
    ['version 0 (md5)', 'Passw0rd-md5!', $salt, ['0']],
    ['version 1 (sha256)', 'Passw0rd-sha256!', $salt, ['1']],
    ['version 2 (argon2id13, interactive limits)', 'Passw0rd-argon2!', $salt, ['2']],
    ['version 3_32_2_67108864 (2.4.7+ default)', 'Passw0rd-argon3!', $salt, [ARGON_LATEST]],
    ['chain 1:2 (sha256 upgraded by customer:hash:upgrade)', 'Passw0rd-chain12!', $salt, ['1', '2']],
    ['chain 0:1 (md5 upgraded to sha256)', 'Passw0rd-chain01!', $salt, ['0', '1']],
    ['chain 1:3_32_2_67108864', 'Passw0rd-chain13!', $salt, ['1', ARGON_LATEST]],
    // Magento 1 after the Data Migration Tool: md5(salt.pw) with M1's 2-character salt → ":0",
    // an unsalted md5 → "hash::0", and then upgraded by customer:hash:upgrade (a short salt padded).
    ['Magento 1 md5 with a 2-character salt, migrated', 'Magento1-pass', 'Xy', ['0']],
    ['Magento 1 unsalted md5, migrated', 'Magento1-nosalt', '', ['0']],
    ['Magento 1 md5 migrated, then upgraded to 3_32_2_67108864', 'Magento1-upgraded', 'Xy', ['0', ARGON_LATEST]],
    ['non-ASCII password, version 3', "Pässwörd-ünïcode-€", $salt, [ARGON_LATEST]],
];
$out = [];
foreach ($cases as [$name, $password, $s, $versions]) {
    $out[] = ['name' => $name, 'password' => $password, 'hash' => stored($password, $s, $versions)];
}
echo json_encode(['generator' => 'PHP ' . PHP_VERSION . ', libsodium ' . SODIUM_LIBRARY_VERSION, 'vectors' => $out], JSON_PRETTY_PRINT | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
