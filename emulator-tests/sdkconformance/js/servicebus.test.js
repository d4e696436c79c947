// Conformance of the Service Bus emulator with the JavaScript SDK, @azure/service-bus, pinned in
// emulator-tests/package.json. Run by sdkconformance_test.go, which starts the emulator with
// ../testdata/servicebus.json and passes its connection string in SB_CONNECTION_STRING; one queue per
// test. Every wait is on a condition (a receive with a deadline, a peek until a state is seen).
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const rhea = require('rhea');
const Long = require('long');
const { ServiceBusClient, isServiceBusError } = require('@azure/service-bus');

const connectionString = process.env.SB_CONNECTION_STRING;
if (!connectionString) throw new Error('SB_CONNECTION_STRING is not set: run this through go test ./emulator-tests/sdkconformance');

const T = { timeout: 60000 };
const WAIT = { maxWaitTimeInMs: 10000 };

// Errors surface fast: a failure must not spend minutes in the SDK's retries.
function client() {
    return new ServiceBusClient(connectionString, { retryOptions: { maxRetries: 1, timeoutInMs: 20000, retryDelayInMs: 200 } });
}

async function withClient(fn) {
    const c = client();
    try {
        return await fn(c);
    } finally {
        await c.close();
    }
}

async function receiveExactly(receiver, n, what) {
    const got = [];
    const deadline = Date.now() + 20000;
    while (got.length < n && Date.now() < deadline) {
        got.push(...(await receiver.receiveMessages(n - got.length, WAIT)));
    }
    assert.equal(got.length, n, `${what}: received ${got.length} of ${n} messages`);
    return got;
}

// waitFor polls check (an async predicate) until it holds or the deadline passes.
async function waitFor(what, check, ms = 20000) {
    const deadline = Date.now() + ms;
    for (;;) {
        if (await check()) return;
        if (Date.now() > deadline) assert.fail(`gave up waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 100));
    }
}

function peekFromStart(receiver, n) {
    return receiver.peekMessages(n, { fromSequenceNumber: Long.ZERO });
}

test('send and receive in ReceiveAndDelete mode', T, () => withClient(async (c) => {
    const s = c.createSender('send-receive-delete');
    await s.sendMessages({ body: 'hello', messageId: 'm-1', contentType: 'text/plain', subject: 's', applicationProperties: { n: 7, ok: true } });
    const r = c.createReceiver('send-receive-delete', { receiveMode: 'receiveAndDelete' });
    const [m] = await receiveExactly(r, 1, 'receive-and-delete');
    assert.equal(m.body, 'hello');
    assert.equal(m.messageId, 'm-1');
    assert.equal(m.contentType, 'text/plain');
    assert.equal(m.subject, 's');
    assert.deepEqual(m.applicationProperties, { n: 7, ok: true });
    assert.ok(m.sequenceNumber.toNumber() > 0, 'sequence number');
    assert.ok(m.enqueuedTimeUtc instanceof Date, 'enqueued time');
    assert.deepEqual(await peekFromStart(r, 10), [], 'the message is gone once received');
}));

test('a batch arrives whole and in order, sized by the tier (256 KB on Standard)', T, () => withClient(async (c) => {
    const s = c.createSender('batch');
    const batch = await s.createMessageBatch();
    assert.equal(batch.maxSizeInBytes, 256 * 1024, 'the sender link advertises the Standard limit');
    for (let i = 0; i < 5; i++) assert.ok(batch.tryAddMessage({ body: `b${i}` }), `add b${i}`);
    await s.sendMessages(batch);
    const r = c.createReceiver('batch');
    const got = await receiveExactly(r, 5, 'batch');
    assert.deepEqual(got.map((m) => m.body), ['b0', 'b1', 'b2', 'b3', 'b4']);
    for (const m of got) await r.completeMessage(m);
}));

test('PeekLock: complete removes the message, its lock token is a GUID', T, () => withClient(async (c) => {
    await c.createSender('peek-lock').sendMessages({ body: 'locked' });
    const r = c.createReceiver('peek-lock');
    const [m] = await receiveExactly(r, 1, 'peek-lock');
    assert.match(m.lockToken, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.ok(m.lockedUntilUtc > new Date(), 'locked until a future time');
    assert.equal(m.deliveryCount, 0);
    await r.completeMessage(m);
    assert.deepEqual(await peekFromStart(r, 10), [], 'completed message is gone');
}));

test('abandon redelivers with delivery count + 1 and properties to modify', T, () => withClient(async (c) => {
    await c.createSender('abandon').sendMessages({ body: 'again', applicationProperties: { origin: 'js' } });
    const r = c.createReceiver('abandon');
    const [m] = await receiveExactly(r, 1, 'first delivery');
    await r.abandonMessage(m, { attempt: 1, note: 'retry' });
    const [again] = await receiveExactly(r, 1, 'redelivery');
    assert.equal(again.body, 'again');
    assert.equal(again.deliveryCount, 1);
    assert.deepEqual(again.applicationProperties, { origin: 'js', attempt: 1, note: 'retry' });
    await r.completeMessage(again);
}));

test('defer, then receive the deferred message by sequence number and complete it', T, () => withClient(async (c) => {
    await c.createSender('defer').sendMessages({ body: 'later' });
    const r = c.createReceiver('defer');
    const [m] = await receiveExactly(r, 1, 'defer');
    await r.deferMessage(m, { deferredBy: 'js' });
    const peeked = await peekFromStart(r, 10);
    assert.equal(peeked.length, 1);
    assert.equal(peeked[0].state, 'deferred');
    const [d] = await r.receiveDeferredMessages(m.sequenceNumber);
    assert.equal(d.body, 'later');
    assert.equal(d.applicationProperties.deferredBy, 'js');
    await r.completeMessage(d);
    assert.deepEqual(await peekFromStart(r, 10), [], 'completed deferred message is gone');
}));

test('dead-letter moves the message to the dead-letter queue with reason and description', T, () => withClient(async (c) => {
    await c.createSender('dead-letter').sendMessages({ body: 'poison' });
    const r = c.createReceiver('dead-letter');
    const [m] = await receiveExactly(r, 1, 'dead-letter');
    await r.deadLetterMessage(m, { deadLetterReason: 'bad', deadLetterErrorDescription: 'cannot parse', extra: 'kept' });
    const dlq = c.createReceiver('dead-letter', { subQueueType: 'deadLetter' });
    const [d] = await receiveExactly(dlq, 1, 'dead-letter queue');
    assert.equal(d.body, 'poison');
    assert.equal(d.deadLetterReason, 'bad');
    assert.equal(d.deadLetterErrorDescription, 'cannot parse');
    assert.equal(d.applicationProperties.extra, 'kept');
    assert.equal(d.deadLetterSource, undefined);
    await dlq.completeMessage(d);
    const transfer = c.createReceiver('dead-letter', { subQueueType: 'transferDeadLetter' });
    assert.deepEqual(await peekFromStart(transfer, 10), [], 'the transfer dead-letter queue is a queue of its own');
}));

test('schedule two messages, cancel one: only the other arrives, at its time', T, () => withClient(async (c) => {
    const s = c.createSender('schedule');
    const at = new Date(Date.now() + 5000); // far enough out for the cancel and the peek on a busy machine
    const [keep] = await s.scheduleMessages({ body: 'scheduled' }, at);
    const [drop] = await s.scheduleMessages({ body: 'cancelled' }, at);
    assert.ok(drop.greaterThan(keep), 'sequence numbers rise');
    await s.cancelScheduledMessages(drop);
    const r = c.createReceiver('schedule');
    const peeked = await peekFromStart(r, 10);
    assert.deepEqual(peeked.map((m) => [m.body, m.state]), [['scheduled', 'scheduled']]);
    const [m] = await receiveExactly(r, 1, 'scheduled message');
    assert.equal(m.body, 'scheduled');
    assert.ok(m.enqueuedTimeUtc.getTime() >= at.getTime() - 50, `enqueued at ${m.enqueuedTimeUtc.toISOString()}, scheduled for ${at.toISOString()}`);
    assert.ok(m.sequenceNumber.equals(keep));
    await r.completeMessage(m);
    assert.deepEqual(await peekFromStart(r, 10), [], 'the cancelled message never arrives');
}));

test('peek an empty queue, then two messages without locking them', T, () => withClient(async (c) => {
    const r = c.createReceiver('peek');
    assert.deepEqual(await r.peekMessages(5), [], 'peek on an empty queue is an empty list');
    await c.createSender('peek').sendMessages([{ body: 'p1' }, { body: 'p2' }]);
    const peeked = await peekFromStart(r, 5);
    assert.deepEqual(peeked.map((m) => m.body), ['p1', 'p2']);
    assert.equal(peeked[0].lockToken, undefined, 'a peeked message has no lock');
    const got = await receiveExactly(r, 2, 'peeked messages are still there');
    for (const m of got) await r.completeMessage(m);
}));

test('renewing a lock extends lockedUntil and keeps the message', T, () => withClient(async (c) => {
    await c.createSender('renew-lock').sendMessages({ body: 'renew' }); // LockDuration PT5S
    const r = c.createReceiver('renew-lock', { maxAutoLockRenewalDurationInMs: 0 });
    const [m] = await receiveExactly(r, 1, 'renew-lock');
    const first = m.lockedUntilUtc;
    await waitFor('the clock to pass the first second of the lock', async () => Date.now() > first.getTime() - 4000);
    const renewed = await r.renewMessageLock(m);
    assert.ok(renewed > first, `renewed until ${renewed.toISOString()}, was ${first.toISOString()}`);
    await waitFor('the first lock to run out', async () => Date.now() > first.getTime() + 200);
    await r.completeMessage(m); // still locked: the renewal holds
}));

test('past MaxDeliveryCount the message is dead-lettered', T, () => withClient(async (c) => {
    await c.createSender('max-delivery').sendMessages({ body: 'doomed' }); // MaxDeliveryCount 2
    const r = c.createReceiver('max-delivery');
    for (let i = 0; i < 2; i++) {
        const [m] = await receiveExactly(r, 1, `delivery ${i + 1}`);
        assert.equal(m.deliveryCount, i);
        await r.abandonMessage(m);
    }
    const dlq = c.createReceiver('max-delivery', { subQueueType: 'deadLetter', receiveMode: 'receiveAndDelete' });
    const [d] = await receiveExactly(dlq, 1, 'dead-letter queue');
    assert.equal(d.body, 'doomed');
    assert.equal(d.deadLetterReason, 'MaxDeliveryCountExceeded');
}));

test('an expired lock redelivers the message', T, () => withClient(async (c) => {
    await c.createSender('lock-expiry').sendMessages({ body: 'slow' }); // LockDuration PT1S
    const r = c.createReceiver('lock-expiry', { maxAutoLockRenewalDurationInMs: 0 });
    const [m] = await receiveExactly(r, 1, 'first delivery');
    const [again] = await receiveExactly(r, 1, 'redelivery after the lock expired');
    assert.ok(again.sequenceNumber.equals(m.sequenceNumber));
    assert.equal(again.deliveryCount, 1);
    await assert.rejects(r.completeMessage(m), (err) => isServiceBusError(err) && err.code === 'MessageLockLost');
    await r.completeMessage(again);
}));

test('a message past its time to live is dead-lettered when the queue says so', T, () => withClient(async (c) => {
    await c.createSender('ttl').sendMessages({ body: 'stale', timeToLive: 300 }); // DeadLetteringOnMessageExpiration
    const r = c.createReceiver('ttl');
    await waitFor('the message to leave the queue', async () => (await peekFromStart(r, 10)).length === 0);
    const dlq = c.createReceiver('ttl', { subQueueType: 'deadLetter', receiveMode: 'receiveAndDelete' });
    const [d] = await receiveExactly(dlq, 1, 'dead-letter queue');
    assert.equal(d.body, 'stale');
    assert.equal(d.deadLetterReason, 'TTLExpiredException');
    assert.equal(d.timeToLive, 300);
}));

test('subscribe: a streaming receiver gets each message once and completes it', T, () => withClient(async (c) => {
    await c.createSender('subscribe').sendMessages([{ body: 's1' }, { body: 's2' }, { body: 's3' }]);
    const r = c.createReceiver('subscribe');
    const seen = [];
    let failure = null;
    const sub = r.subscribe({
        processMessage: async (m) => { seen.push(m.body); },
        processError: async (args) => { failure = args.error; },
    }, { maxConcurrentCalls: 2 });
    try {
        await waitFor('three messages', async () => seen.length >= 3 || failure !== null);
        assert.equal(failure, null, `processError: ${failure}`);
        assert.deepEqual([...seen].sort(), ['s1', 's2', 's3']);
        await waitFor('auto-complete to empty the queue', async () => (await peekFromStart(r, 10)).length === 0);
    } finally {
        await sub.close();
    }
}));

test('a topic copies each message to every subscription', T, () => withClient(async (c) => {
    await c.createSender('fanout').sendMessages({ body: 'everyone' });
    for (const sub of ['first', 'second']) {
        const r = c.createReceiver('fanout', sub, { receiveMode: 'receiveAndDelete' });
        const [m] = await receiveExactly(r, 1, sub);
        assert.equal(m.body, 'everyone');
    }
}));

test('a message over 256 KB is refused (the SDK sends it; the broker rejects it), one under it goes through', T, () => withClient(async (c) => {
    const s = c.createSender('size-limit');
    await assert.rejects(s.sendMessages({ body: Buffer.alloc(300 * 1024) }), (err) => isServiceBusError(err) && err.code === 'MessageSizeExceeded');
    const body = Buffer.alloc(250 * 1024, 7);
    await s.sendMessages({ body });
    const r = c.createReceiver('size-limit', { receiveMode: 'receiveAndDelete' });
    const [m] = await receiveExactly(r, 1, '250 KB message');
    assert.ok(Buffer.from(m.body).equals(body), '250 KB body round-trips');
    assert.deepEqual(await peekFromStart(r, 10), [], 'the 250 KB message arrived once, the 300 KB one never');
}));

// A client that ignores max-message-size is refused by the broker: the transfer is rejected with
// amqp:link:message-size-exceeded, and the link stays usable.
test('the broker enforces max-message-size on a client that ignores it', T, async () => {
    const endpoint = /Endpoint=sb:\/\/([^:;/]+):(\d+)/.exec(connectionString);
    assert.ok(endpoint, 'connection string has host and port');
    const container = rhea.create_container({ id: 'oversize-client' });
    const conn = container.connect({ host: endpoint[1], port: Number(endpoint[2]), username: 'any', password: 'any', reconnect: false });
    try {
        const outcomes = await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('no outcome for the transfers')), 20000);
            const sender = conn.open_sender({ target: { address: 'size-limit' } });
            const got = [];
            sender.once('sendable', () => {
                assert.equal(sender.remote.attach.max_message_size, 256 * 1024);
                sender.send({ body: rhea.message.data_section(Buffer.alloc(300 * 1024)) });
                sender.send({ body: 'small, after it' });
            });
            const done = () => { if (got.length === 2) { clearTimeout(timer); resolve(got); } };
            sender.on('rejected', (ctx) => { got.push(['rejected', ctx.delivery.remote_state.error]); done(); });
            sender.on('accepted', () => { got.push(['accepted']); done(); });
            sender.on('sender_close', (ctx) => { clearTimeout(timer); reject(new Error('link detached: ' + JSON.stringify(ctx.sender.error))); });
        });
        assert.equal(outcomes[0][0], 'rejected');
        assert.equal(outcomes[0][1].condition, 'amqp:link:message-size-exceeded');
        assert.match(outcomes[0][1].description, /exceeds the limit \(262144 bytes\)/);
        assert.deepEqual(outcomes[1], ['accepted'], 'the link stays usable');
    } finally {
        conn.close();
    }
    await withClient(async (c) => {
        const r = c.createReceiver('size-limit', { receiveMode: 'receiveAndDelete' });
        const [m] = await receiveExactly(r, 1, 'the small message');
        assert.equal(m.body, 'small, after it', 'only the small message was enqueued');
        assert.deepEqual(await peekFromStart(r, 10), []);
    });
});

test('sessions: accept by ID and the next free one, in order, with state and lock renewal', T, () => withClient(async (c) => {
    const s = c.createSender('sessions');
    await assert.rejects(s.sendMessages({ body: 'nobody' }), (err) => /SessionId was not set/.test(String(err && err.message)));
    await s.sendMessages([
        { body: 'a1', sessionId: 's1' }, { body: 'b1', sessionId: 's2' }, { body: 'a2', sessionId: 's1' }, { body: 'b2', sessionId: 's2' },
    ]);
    await assert.rejects(c.createReceiver('sessions').receiveMessages(1, WAIT), (err) => /requires sessions/.test(String(err && err.message)));
    await assert.rejects(c.acceptSession('peek', 'x'), (err) => /does not require sessions/.test(String(err && err.message)));

    const s1 = await c.acceptSession('sessions', 's1', { maxAutoLockRenewalDurationInMs: 0 });
    assert.equal(s1.sessionId, 's1');
    assert.ok(s1.sessionLockedUntilUtc > new Date(), 'session lock in the future');
    const got = await receiveExactly(s1, 2, 'session s1');
    assert.deepEqual(got.map((m) => [m.body, m.sessionId]), [['a1', 's1'], ['a2', 's1']]);
    for (const m of got) await s1.completeMessage(m);
    await assert.rejects(c.acceptSession('sessions', 's1'), (err) => /cannot be accepted/.test(String(err && err.message)));
    await s1.setSessionState('checkpoint');
    assert.equal(await s1.getSessionState(), 'checkpoint');
    const before = s1.sessionLockedUntilUtc;
    const renewed = await s1.renewSessionLock();
    assert.ok(renewed >= before, `renewed until ${renewed.toISOString()}, was ${before.toISOString()}`);

    const next = await c.acceptNextSession('sessions', { maxAutoLockRenewalDurationInMs: 0 });
    assert.equal(next.sessionId, 's2', 'the next free session');
    assert.deepEqual((await next.peekMessages(10)).map((m) => m.body), ['b1', 'b2']);
    const fromS2 = await receiveExactly(next, 2, 'session s2');
    for (const m of fromS2) await next.completeMessage(m);
    await next.close();

    await s1.close();
    const again = await c.acceptSession('sessions', 's1');
    assert.equal(await again.getSessionState(), 'checkpoint', 'session state outlives the receiver');
    await again.close();
}));
