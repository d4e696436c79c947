// Conformance of the Key Vault emulator with the JavaScript SDK, @azure/keyvault-secrets, pinned in
// emulator-tests/package.json. Run by sdkconformance_test.go, which starts two emulators and passes:
//   KV_URL        a vault with purge protection, as Coffer deploys it;
//   KV_URL_OTHER  a second vault (no purge protection), to restore a backup into;
//   KV_TOKEN      the bearer token both accept;
//   KV_RBAC_URL, KV_RBAC_TOKEN, KV_RBAC_OID  a vault with Azure RBAC, and machine A's token (object
//                 ID KV_RBAC_OID), which holds Coffer's machine role on coffer-passphrase-a only;
//   NODE_EXTRA_CA_CERTS  their CA certificates, so node trusts their HTTPS.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { SecretClient } = require('@azure/keyvault-secrets');
const { StaticTokenCredential } = require('./credential');

for (const v of ['KV_URL', 'KV_URL_OTHER', 'KV_TOKEN', 'KV_RBAC_URL', 'KV_RBAC_TOKEN', 'KV_RBAC_OID']) {
    if (!process.env[v]) throw new Error(`${v} is not set: run this through go test ./emulator-tests/sdkconformance`);
}

const T = { timeout: 60000 };
const credential = new StaticTokenCredential(process.env.KV_TOKEN);
// The emulator listens on 127.0.0.1, not a vault.azure.net name: skip the check that the challenge's
// resource matches the vault's domain (as azsecrets' DisableChallengeResourceVerification).
const options = { disableChallengeResourceVerification: true, retryOptions: { maxRetries: 1 } };
const vault = new SecretClient(process.env.KV_URL, credential, options);
const other = new SecretClient(process.env.KV_URL_OTHER, credential, options);
const poll = { intervalInMs: 50 };

async function all(iter) {
    const out = [];
    for await (const x of iter) out.push(x);
    return out;
}

function statusOf(err) {
    return err && (err.statusCode || (err.response && err.response.status));
}

test('set, get the latest and get by version', T, async () => {
    // (4.11.0 leaves contentType out of the requests of setSecret and updateSecretProperties, so it is
    // not checked here; the Go tests cover it.)
    const v1 = await vault.setSecret('versions', 'first', { tags: { machine: 'a' } });
    const v2 = await vault.setSecret('versions', 'second');
    assert.equal(v1.value, 'first');
    assert.deepEqual(v1.properties.tags, { machine: 'a' });
    assert.notEqual(v1.properties.version, v2.properties.version);
    assert.equal((await vault.getSecret('versions')).value, 'second');
    assert.equal((await vault.getSecret('versions', { version: v1.properties.version })).value, 'first');
    assert.equal((await vault.getSecret('versions', { version: v2.properties.version })).value, 'second');
    assert.equal(v1.properties.recoveryLevel, 'Recoverable', 'purge protection: recoverable, not purgeable');
});

test('list secrets and the versions of one', T, async () => {
    const a = await vault.setSecret('listed', 'one');
    const b = await vault.setSecret('listed', 'two');
    const versions = (await all(vault.listPropertiesOfSecretVersions('listed'))).map((p) => p.version).sort();
    assert.deepEqual(versions, [a.properties.version, b.properties.version].sort());
    const names = (await all(vault.listPropertiesOfSecrets())).map((p) => p.name);
    assert.ok(names.includes('listed'), `listed among ${names.join(', ')}`);
});

test('a disabled version cannot be read; enabling it again can', T, async () => {
    const s = await vault.setSecret('disabled', 'hidden');
    const updated = await vault.updateSecretProperties('disabled', s.properties.version, { enabled: false, tags: { why: 'rotated' } });
    assert.equal(updated.enabled, false);
    assert.deepEqual(updated.tags, { why: 'rotated' });
    await assert.rejects(vault.getSecret('disabled'), (err) => statusOf(err) === 403 && err.code === 'Forbidden');
    await vault.updateSecretProperties('disabled', s.properties.version, { enabled: true });
    assert.equal((await vault.getSecret('disabled')).value, 'hidden');
});

test('delete, read the deleted secret, recover it', T, async () => {
    await vault.setSecret('recoverable', 'keep me');
    const deleted = await (await vault.beginDeleteSecret('recoverable', poll)).pollUntilDone();
    assert.equal(deleted.name, 'recoverable');
    assert.ok(deleted.properties.deletedOn instanceof Date, 'deletedOn');
    assert.ok(deleted.properties.scheduledPurgeDate > deleted.properties.deletedOn, 'scheduledPurgeDate after deletedOn');
    await assert.rejects(vault.getSecret('recoverable'), (err) => statusOf(err) === 404);
    assert.equal((await vault.getDeletedSecret('recoverable')).name, 'recoverable');
    const names = (await all(vault.listDeletedSecrets())).map((s) => s.name);
    assert.ok(names.includes('recoverable'));
    await (await vault.beginRecoverDeletedSecret('recoverable', poll)).pollUntilDone();
    assert.equal((await vault.getSecret('recoverable')).value, 'keep me');
});

test('purge is refused under purge protection and the secret stays recoverable', T, async () => {
    await vault.setSecret('protected', 'stays');
    await (await vault.beginDeleteSecret('protected', poll)).pollUntilDone();
    await assert.rejects(vault.purgeDeletedSecret('protected'), (err) => statusOf(err) === 403);
    assert.equal((await vault.getDeletedSecret('protected')).name, 'protected');
    await (await vault.beginRecoverDeletedSecret('protected', poll)).pollUntilDone();
    assert.equal((await vault.getSecret('protected')).value, 'stays');
});

test('backup, then restore into another vault with every version', T, async () => {
    const v1 = await vault.setSecret('backed-up', 'v1');
    const v2 = await vault.setSecret('backed-up', 'v2');
    const blob = await vault.backupSecret('backed-up');
    assert.ok(blob instanceof Uint8Array && blob.length > 0, 'a backup blob');
    await assert.rejects(vault.restoreSecretBackup(blob), (err) => statusOf(err) === 409, 'restoring over an existing secret is a conflict');
    const restored = await other.restoreSecretBackup(blob);
    assert.equal(restored.name, 'backed-up');
    assert.equal((await other.getSecret('backed-up')).value, 'v2');
    assert.equal((await other.getSecret('backed-up', { version: v1.properties.version })).value, 'v1');
    const versions = (await all(other.listPropertiesOfSecretVersions('backed-up'))).map((p) => p.version).sort();
    assert.deepEqual(versions, [v1.properties.version, v2.properties.version].sort());
});

test('tag limits: 15 tags, names to 512 and values to 256 characters', T, async () => {
    const tags = {};
    for (let i = 0; i < 15; i++) tags['n'.repeat(511) + String.fromCharCode(97 + i)] = 'é'.repeat(256);
    await vault.setSecret('tagged', 'v', { tags });
    await assert.rejects(vault.setSecret('tagged', 'v', { tags: { ['n'.repeat(513)]: 'v' } }), (err) => statusOf(err) === 400 && err.code === 'BadParameter');
    await assert.rejects(vault.setSecret('tagged', 'v', { tags: { t: 'v'.repeat(257) } }), (err) => statusOf(err) === 400 && err.code === 'BadParameter');
    tags.sixteenth = 'v';
    await assert.rejects(vault.setSecret('tagged', 'v', { tags }), (err) => statusOf(err) === 400 && err.code === 'BadParameter');
});

test('an api-version Key Vault does not serve is refused in Key Vault\'s error shape', T, async () => {
    const old = new SecretClient(process.env.KV_URL, credential, { ...options, serviceVersion: '9.9' });
    await assert.rejects(old.getSecret('versions'), (err) => statusOf(err) === 400 && err.code === 'BadParameter' &&
        /The specified version \(9\.9\) is not recognized/.test(err.message));
});

test("with RBAC, a machine's identity reaches its own secret and no other", T, async () => {
    const machine = new SecretClient(process.env.KV_RBAC_URL, new StaticTokenCredential(process.env.KV_RBAC_TOKEN), options);
    const set = await machine.setSecret('coffer-passphrase-a', 'passphrase of a');
    assert.equal((await machine.getSecret('coffer-passphrase-a', { version: set.properties.version })).value, 'passphrase of a');
    const forbidden = (err) => statusOf(err) === 403 && err.code === 'Forbidden' &&
        err.message.includes('oid=' + process.env.KV_RBAC_OID) && err.message.includes('coffer-passphrase-b');
    await assert.rejects(machine.getSecret('coffer-passphrase-b'), forbidden);
    await assert.rejects(machine.setSecret('coffer-passphrase-b', 'x'), forbidden);
    await assert.rejects(all(machine.listPropertiesOfSecrets()), (err) => statusOf(err) === 403);
    await assert.rejects(machine.beginDeleteSecret('coffer-passphrase-a', poll), (err) => statusOf(err) === 403, 'the machine role cannot delete');
    const stranger = new SecretClient(process.env.KV_RBAC_URL, new StaticTokenCredential('not-a-token-it-issued'), { ...options, retryOptions: { maxRetries: 0 } });
    await assert.rejects(stranger.getSecret('coffer-passphrase-a'), (err) => statusOf(err) === 401);
});
