<?php
// Values encrypted at rest the way Magento 2.4's Encryptor writes them, so the tests of Tillkey's
// reader do not check it against its own output (magento-migration.md §A.2, §A.3):
//   php tests/vectors/magento_encryptor/magento_encrypt.php > tests/vectors/magento_encryptor/magento.json
// The keys are fixed; the nonces are random (as in Magento), so the ciphertexts change at each run.

// env.php's crypt/key: a pre-2.4.7 key (32 characters, used as raw bytes), then a 2.4.7+ key
// ("base64" + base64 of 32 random bytes). encrypt() uses the last one; each stays readable.
$cryptKey = "0123456789abcdefghijklmnopqrstuv\nbase64" . base64_encode(hash('sha256', 'tillkey test key 1', true));
$keys = preg_split('/\s+/s', trim($cryptKey));

// Encryptor::decodeKey (2.4.7+): a "base64" key is the decoding of the rest.
function decode_key(string $key): string {
    return str_starts_with($key, 'base64') ? base64_decode(substr($key, 6)) : $key;
}

// Encryptor::encrypt with Adapter\SodiumChachaIetf: "<key version>:3:" + base64(nonce . ct . tag),
// the 12-byte nonce also being the associated data.
function encrypt_sodium(string $data, array $keys, ?int $version = null): string {
    $version ??= count($keys) - 1;
    $nonce = random_bytes(SODIUM_CRYPTO_AEAD_CHACHA20POLY1305_IETF_NPUBBYTES);
    $ct = sodium_crypto_aead_chacha20poly1305_ietf_encrypt($data, $nonce, $nonce, decode_key($keys[$version]));
    return $version . ':3:' . base64_encode($nonce . $ct);
}

// Cipher 1 (Magento 1 / 2.x before sodium, mcrypt MCRYPT_RIJNDAEL_128 in ECB with a 32-byte key,
// zero padding) is AES-256-ECB: openssl with no padding of its own, zero-padded here.
function encrypt_mcrypt_1(string $data, array $keys, int $version): string {
    $padded = str_pad($data, intdiv(strlen($data) + 15, 16) * 16, "\0");
    $ct = openssl_encrypt($padded, 'aes-256-ecb', decode_key($keys[$version]), OPENSSL_RAW_DATA | OPENSSL_ZERO_PADDING);
    return $version . ':1:' . base64_encode($ct);
}

// RFC 4648 Base32 without padding (what Magento's TFA Google provider stores as the TOTP secret).
function base32(string $bytes): string {
    $alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    $bits = '';
    foreach (str_split($bytes) as $c) { $bits .= str_pad(decbin(ord($c)), 8, '0', STR_PAD_LEFT); }
    $out = '';
    foreach (str_split($bits, 5) as $chunk) { $out .= $alphabet[bindec(str_pad($chunk, 5, '0'))]; }
    return $out;
}

// Magento's token alphabet for OAuth values: 32 characters of [0-9a-z] (fixed here).
function token(string $seed): string {
    $alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
    $out = '';
    foreach (str_split(substr(hash('sha256', $seed, true), 0, 32)) as $c) { $out .= $alphabet[ord($c) % 36]; }
    return $out;
}

// Google::generateSecret: Base32 of "abcd" + 128 random bytes, "=" removed (fixed bytes here).
$totp = base32('abcd' . substr(str_repeat(hash('sha512', 'tillkey totp', true), 2), 0, 128));

$plain = [
    'erp consumer secret' => token('erp consumer secret'),
    'erp access token secret' => token('erp access token secret'),
    'pim consumer secret' => token('pim consumer secret'),
    'pim access token secret' => token('pim access token secret'),
];
$out = [
    'crypt_key' => $cryptKey,
    'tokens' => [
        'erp consumer key' => token('erp consumer key'),
        'erp access token' => token('erp access token'),
        'pim consumer key' => token('pim consumer key'),
        'pim access token' => token('pim access token'),
    ],
    'vectors' => [
        ['name' => 'erp consumer secret, sodium, newest key', 'plain' => $plain['erp consumer secret'], 'stored' => encrypt_sodium($plain['erp consumer secret'], $keys)],
        ['name' => 'erp access token secret, sodium, newest key', 'plain' => $plain['erp access token secret'], 'stored' => encrypt_sodium($plain['erp access token secret'], $keys)],
        ['name' => 'pim consumer secret, sodium, older key', 'plain' => $plain['pim consumer secret'], 'stored' => encrypt_sodium($plain['pim consumer secret'], $keys, 0)],
        // Before 2.4.3-p2 secrets were stored plain (≤ 32 characters); the upgrade patch leaves them to be read as is.
        ['name' => 'pim access token secret, plain (before 2.4.3-p2)', 'plain' => $plain['pim access token secret'], 'stored' => $plain['pim access token secret']],
        ['name' => 'mcrypt cipher 1, older key', 'plain' => 'a value from Magento 1', 'stored' => encrypt_mcrypt_1('a value from Magento 1', $keys, 0)],
        ['name' => 'non-ASCII, sodium', 'plain' => 'Grüße €', 'stored' => encrypt_sodium('Grüße €', $keys)],
    ],
    // tfa_user_config.encoded_config: the JSON is encrypted, and the Google secret inside it again.
    'totp' => [
        'secret' => $totp,
        'encoded_config' => encrypt_sodium(json_encode(['google' => ['secret' => encrypt_sodium($totp, $keys), 'active' => true]]), $keys),
    ],
];
echo json_encode(['generator' => 'PHP ' . PHP_VERSION . ', libsodium ' . SODIUM_LIBRARY_VERSION] + $out, JSON_PRETTY_PRINT | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
