#!/usr/bin/env node
// Service Bus emulator for Coffer's emulator tests, built on rhea (AMQP 1.0, server mode).
//
// Usage: node server.js [--config PATH] [--host 127.0.0.1] [--port 0] [--tier Basic|Standard|Premium]
// Prints exactly one line "Service Bus emulator listening at amqp://HOST:PORT" once it listens,
// and exits promptly on SIGTERM/SIGINT. Set SB_EMULATOR_DEBUG=1 for a log line per operation.
//
// Supported (what the azservicebus Go client and @azure/service-bus use with UseDevelopmentEmulator=true):
//   - plain AMQP with SASL ANONYMOUS (PLAIN is also accepted with any credentials);
//   - $cbs put-token: any token is accepted (status-code 202); replies go to the link whose target
//     address or, failing that, whose name equals the request's reply-to (Go names it by address,
//     the JavaScript and .NET SDKs by name);
//   - the tier's message size limit (Basic and Standard 256 KB, Premium 1 MB or the entity's
//     MaxMessageSizeInKilobytes), advertised as max-message-size on every link a client sends on and
//     enforced on every transfer: a larger one is rejected with amqp:link:message-size-exceeded;
//   - a message sent without a message-id is given one, as the service does;
//   - queues, topics and subscriptions from an official-emulator style Config.json
//     (subscription Rules are not evaluated: every subscription gets a copy of every message);
//   - send, batch send (message-format 0x80013700), scheduled enqueue time (annotation and
//     com.microsoft:schedule-message / cancel-scheduled-message);
//   - ReceiveAndDelete (pre-settled transfers) and PeekLock (16-byte .NET-order lock-token
//     delivery tags, x-opt-lock-token, LockDuration, lock expiry and redelivery with a rising
//     DeliveryCount, MaxDeliveryCount then dead-lettering with MaxDeliveryCountExceeded);
//   - settlement on the link: accepted=Complete, modified=Abandon, modified+undeliverable-here=Defer,
//     rejected com.microsoft:dead-letter=DeadLetter, released=put back without counting a delivery;
//     a settlement after the lock was lost is rejected with com.microsoft:message-lock-lost;
//   - properties-to-modify on Abandon, Defer and DeadLetter (modified message-annotations, rejected
//     error info, update-disposition properties-to-modify) become application properties, types kept;
//   - <entity>/$DeadLetterQueue (TTL expiry, on a timer whether or not anyone receives, dead-letters
//     when DeadLetteringOnMessageExpiration) and
//     <entity>/$Transfer/$DeadLetterQueue, a queue of its own (always empty: nothing is forwarded);
//   - $management: renew-lock, peek-message, receive-by-sequence-number, update-disposition,
//     schedule-message, cancel-scheduled-message, replying with statusCode/statusDescription
//     (and errorCondition) as the service does; $cbs replies use status-code/status-description.
//   - link credit is honoured: a message is transferred only while the receiver has credit;
//   - sessions (RequiresSession): a message must carry a SessionId (group-id); a receiver accepts a
//     session by ID or the next free one (com.microsoft:session-filter, echoed in the encoding the
//     client used; com.microsoft:locked-until-utc in .NET ticks), gets only that session's messages,
//     holds the session lock (LockDuration; renew-session-lock; lost: detached with
//     com.microsoft:session-lock-lost) until it detaches; get/set-session-state; peek and
//     receive-by-sequence-number filtered by session-id. A plain receiver on a session entity, or a
//     session receiver elsewhere, is refused with amqp:not-allowed, as the service does.
// Locks held by a receiver that detaches stay until they expire (as on Azure), so they can still be
// settled through $management; after expiry the message is redelivered with DeliveryCount+1.
// Accepting the next session while none is free waits, as the service does, for the client's
// com.microsoft:timeout (else a minute), then refuses the attach with com.microsoft:timeout.
// Not supported: duplicate detection, ForwardTo, rule filters, transactions, listing sessions
// (get-message-sessions). Everything is in memory.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

// rhea 3.0.5 writes consecutive settled deliveries as one disposition frame carrying the first one's
// state, and checks that their outcomes are equivalent only once a run has two members: a rejected
// transfer followed by an accepted one can both read as rejected at the client, a Complete answered
// in the same tick as an Abandon both as accepted. Load rhea's session.js with that check applied to
// every delivery after the first. If rhea changes, say so and use it as it is.
(function fixDispositionMerging() {
    const Module = require('module');
    const file = require.resolve('rhea/lib/session.js');
    const bug = '(first !== last && !message.are_outcomes_equivalent(last.state, delivery.state))';
    const src = fs.readFileSync(file, 'utf8');
    if (!src.includes(bug)) {
        console.error('servicebus emulator: rhea/lib/session.js is not the version this emulator patches; dispositions with different outcomes may be merged');
        return;
    }
    const m = new Module(file, module);
    m.filename = file;
    m.paths = Module._nodeModulePaths(path.dirname(file));
    m._compile(src.replace(bug, '(delivery !== first && !message.are_outcomes_equivalent(last.state, delivery.state))'), file);
    m.loaded = true;
    require.cache[file] = m;
})();
const rhea = require('rhea');

const types = rhea.types;
const amqpMessage = rhea.message;

// rhea decodes format-0 transfers before handing them over; keep the exact bytes beside the decoded
// message so properties and application properties are stored with the types the client sent.
const rheaDecode = amqpMessage.decode;
amqpMessage.decode = function (buffer) {
    const msg = rheaDecode(buffer);
    Object.defineProperty(msg, '__raw', { value: buffer, enumerable: false });
    return msg;
};

const BATCH_FORMAT = 0x80013700;
// Message size limits of the tiers (https://learn.microsoft.com/azure/service-bus-messaging/service-bus-quotas):
// 256 KB on Basic and Standard; 1 MB by default on Premium, up to 100 MB per entity.
const TIERS = {
    basic: { name: 'Basic', maxMessageSize: 256 * 1024 },
    standard: { name: 'Standard', maxMessageSize: 256 * 1024 },
    premium: { name: 'Premium', maxMessageSize: 1024 * 1024 },
};
const PREMIUM_MAX_KB = 102400;
let tier = TIERS.standard;
const UINT32_MAX = 4294967295;
const DEBUG = !!process.env.SB_EMULATOR_DEBUG;

function debug(...args) {
    if (DEBUG) console.log(new Date().toISOString(), ...args);
}

// ---------- arguments and configuration ----------

function parseArgs(argv) {
    const args = { config: path.join(__dirname, 'config.json'), host: '127.0.0.1', port: 0, tier: 'Standard' };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) throw new Error('missing value for ' + a);
            return argv[++i];
        };
        if (a === '--config') args.config = next();
        else if (a === '--host') args.host = next();
        else if (a === '--port') args.port = Number(next());
        else if (a === '--tier') args.tier = next();
        else throw new Error('unknown argument ' + a);
    }
    if (!TIERS[String(args.tier).toLowerCase()]) throw new Error(`--tier ${args.tier}: want Basic, Standard or Premium`);
    return args;
}

// parseDuration turns an ISO-8601 duration (PT1M, PT0.5S, P1DT2H, P14D) or a .NET TimeSpan
// ("00:01:00", "1.02:03:04.5") into milliseconds.
function parseDuration(value, fallbackMs) {
    if (value === undefined || value === null || value === '') return fallbackMs;
    if (typeof value === 'number') return value;
    const s = String(value).trim();
    const iso = /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i.exec(s);
    if (iso && s.length > 1 && !/T$/i.test(s)) {
        const [, w, d, h, m, sec] = iso.map((x) => (x === undefined ? 0 : Number(x)));
        return Math.round(((((w * 7 + d) * 24 + h) * 60 + m) * 60 + sec) * 1000);
    }
    const ts = /^(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)$/.exec(s);
    if (ts) {
        const [, d, h, m, sec] = ts.map((x) => (x === undefined ? 0 : Number(x)));
        return Math.round((((d * 24 + h) * 60 + m) * 60 + sec) * 1000);
    }
    throw new Error('cannot parse duration ' + JSON.stringify(value));
}

function entityProps(p) {
    p = p || {};
    return {
        lockDurationMs: parseDuration(p.LockDuration, 60 * 1000),
        defaultTtlMs: parseDuration(p.DefaultMessageTimeToLive, Number.MAX_SAFE_INTEGER),
        maxDeliveryCount: p.MaxDeliveryCount === undefined ? 10 : Number(p.MaxDeliveryCount),
        deadLetterOnExpiration: !!p.DeadLetteringOnMessageExpiration,
        requiresSession: !!p.RequiresSession,
        maxMessageSizeKb: p.MaxMessageSizeInKilobytes === undefined ? undefined : Number(p.MaxMessageSizeInKilobytes),
    };
}

// ---------- entities ----------

class Entity {
    constructor(name, kind, props, parent) {
        this.name = name; // path as clients address it
        this.kind = kind; // 'queue' | 'subscription' | 'dlq'
        this.props = props;
        this.parent = parent || null;
        this.messages = new Map(); // sequence number -> record, in enqueue order
        this.byToken = new Map(); // lock token hex -> record
        this.consumers = [];
        this.rr = 0;
        this.sessions = new Map(); // session id -> { id, holder: link | null, until, timer, state: Buffer | null }
        this.sessionWaiters = []; // receivers waiting for the next free session
        this.dlq = kind === 'dlq' ? null : new Entity(name + '/$DeadLetterQueue', 'dlq', props, this);
        // The transfer dead-letter queue holds messages that could not be forwarded (ForwardTo,
        // transactions); it is its own queue, never the dead-letter queue.
        this.transferDlq = kind === 'dlq' ? null : new Entity(name + '/$Transfer/$DeadLetterQueue', 'dlq', props, this);
    }

    get maxMessageSize() {
        return maxMessageSizeOf(this.parent || this);
    }
}

class Topic {
    constructor(name, props) {
        this.name = name;
        this.kind = 'topic';
        this.props = props || {};
        this.subscriptions = [];
    }

    get maxMessageSize() {
        return maxMessageSizeOf(this);
    }
}

function maxMessageSizeOf(e) {
    const kb = e.props && e.props.maxMessageSizeKb;
    return kb === undefined ? tier.maxMessageSize : kb * 1024;
}

const entities = new Map(); // lower-cased path -> Entity | Topic
let nextSequence = 1;

// loadConfig reads an official-emulator style Config.json. A file that is not that shape is
// refused at start with the path of the first bad field, rather than serving no entities.
function loadConfig(file) {
    let cfg;
    try {
        cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
        throw new Error(`config ${file}: ${err.message}`);
    }
    const fail = (where, what) => {
        throw new Error(`config ${file}: ${where} ${what} (see the official emulator's Config.json shape)`);
    };
    const list = (v, where) => {
        if (v === undefined) return [];
        if (!Array.isArray(v)) fail(where, 'must be an array');
        return v;
    };
    const named = (v, where) => {
        if (!v || typeof v !== 'object' || Array.isArray(v)) fail(where, 'must be an object');
        if (typeof v.Name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,259}$/.test(v.Name)) {
            fail(where + '.Name', 'must be a name of letters, digits, ".", "_" or "-"');
        }
        return v;
    };
    const props = (p, where) => {
        if (p !== undefined && (p === null || typeof p !== 'object' || Array.isArray(p))) fail(where, 'must be an object');
        let out;
        try {
            out = entityProps(p);
        } catch (err) {
            fail(where, err.message);
        }
        if (!Number.isInteger(out.maxDeliveryCount) || out.maxDeliveryCount < 1) fail(where + '.MaxDeliveryCount', 'must be a whole number of at least 1');
        if (!(out.lockDurationMs > 0)) fail(where + '.LockDuration', 'must be a positive duration such as PT1M');
        checkMaxSize(out, where);
        return out;
    };
    const checkMaxSize = (out, where) => {
        if (out.maxMessageSizeKb === undefined) return;
        if (tier !== TIERS.premium) fail(where + '.MaxMessageSizeInKilobytes', `is a Premium setting; the tier is ${tier.name} (--tier), whose limit is ${tier.maxMessageSize / 1024} KB`);
        if (!Number.isInteger(out.maxMessageSizeKb) || out.maxMessageSizeKb < 1024 || out.maxMessageSizeKb > PREMIUM_MAX_KB) {
            fail(where + '.MaxMessageSizeInKilobytes', `must be a whole number from 1024 to ${PREMIUM_MAX_KB}`);
        }
    };
    const uc = cfg && cfg.UserConfig;
    if (!uc || typeof uc !== 'object' || Array.isArray(uc)) fail('UserConfig', 'must be an object');
    const namespaces = list(uc.Namespaces, 'UserConfig.Namespaces');
    if (namespaces.length === 0) fail('UserConfig.Namespaces', 'must name at least one namespace');

    const add = (e) => {
        const key = e.name.toLowerCase();
        if (entities.has(key)) throw new Error(`config ${file}: entity ${e.name} is declared twice`);
        entities.set(key, e);
        if (e.dlq) entities.set(e.dlq.name.toLowerCase(), e.dlq);
        if (e.transferDlq) entities.set(e.transferDlq.name.toLowerCase(), e.transferDlq);
    };
    namespaces.forEach((ns, i) => {
        const nw = `UserConfig.Namespaces[${i}]`;
        named(ns, nw);
        list(ns.Queues, nw + '.Queues').forEach((q, j) => {
            const w = `${nw}.Queues[${j}]`;
            add(new Entity(named(q, w).Name, 'queue', props(q.Properties, w + '.Properties')));
        });
        list(ns.Topics, nw + '.Topics').forEach((t, j) => {
            const w = `${nw}.Topics[${j}]`;
            named(t, w);
            if (tier === TIERS.basic) fail(w, 'is a topic, which the Basic tier does not have (--tier)');
            const tp = t.Properties;
            if (tp !== undefined && (tp === null || typeof tp !== 'object' || Array.isArray(tp))) fail(w + '.Properties', 'must be an object');
            const topicProps = { maxMessageSizeKb: tp && tp.MaxMessageSizeInKilobytes !== undefined ? Number(tp.MaxMessageSizeInKilobytes) : undefined };
            checkMaxSize(topicProps, w + '.Properties');
            const topic = new Topic(t.Name, topicProps);
            add(topic);
            list(t.Subscriptions, w + '.Subscriptions').forEach((sb, k) => {
                const sw = `${w}.Subscriptions[${k}]`;
                named(sb, sw);
                const sub = new Entity(t.Name + '/Subscriptions/' + sb.Name, 'subscription', props(sb.Properties, sw + '.Properties'));
                topic.subscriptions.push(sub);
                add(sub);
            });
        });
    });
    if (entities.size === 0) fail('UserConfig.Namespaces', 'declare no queue or topic');
    return entities.size;
}

function normalizeAddress(address) {
    if (!address) return '';
    let a = String(address).replace(/^(amqps?|sb):\/\/[^/]*\//i, '');
    a = a.replace(/^\/+/, '');
    return a;
}

function lookup(address) {
    return entities.get(normalizeAddress(address).toLowerCase());
}

// ---------- messages ----------

function sectionCode(s) {
    if (!s || !s.descriptor) return undefined;
    const v = s.descriptor.value;
    if (typeof v === 'number') return v;
    const symbolic = {
        'amqp:header:list': 0x70, 'amqp:delivery-annotations:map': 0x71, 'amqp:message-annotations:map': 0x72,
        'amqp:properties:list': 0x73, 'amqp:application-properties:map': 0x74, 'amqp:data:binary': 0x75,
        'amqp:amqp-sequence:list': 0x76, 'amqp:value:*': 0x77, 'amqp:footer:map': 0x78,
    };
    return symbolic[String(v)];
}

// parseMessage splits an encoded message into its sections. Sections the broker does not change
// (properties, application-properties, body, footer) are kept as the client's exact bytes, so every
// type round-trips; message annotations are kept as rhea typed values so the broker can add its own.
function parseMessage(buf) {
    const info = amqpMessage.decode(buf);
    const reader = new types.Reader(buf);
    const parsed = { info, annotations: [], properties: null, appProps: null, body: [] };
    while (reader.remaining()) {
        const start = reader.position;
        const s = reader.read();
        const raw = buf.slice(start, reader.position);
        switch (sectionCode(s)) {
            case 0x70: case 0x71: break; // header is rebuilt; delivery annotations are per hop
            case 0x72: parsed.annotations = s.value || []; break;
            case 0x73: parsed.properties = raw; parsed.typedProperties = s; break;
            case 0x74: parsed.appProps = { raw, typed: s }; break;
            default: parsed.body.push(raw);
        }
    }
    return parsed;
}

function annotationValue(parsed, key) {
    const a = parsed.info.message_annotations;
    return a ? a[key] : undefined;
}

function newRecord(entity, parsed, seq, now) {
    const p = entity.props;
    let ttl = parsed.info.ttl !== undefined ? Number(parsed.info.ttl) : Infinity;
    if (!(ttl > 0)) ttl = Infinity;
    ttl = Math.min(ttl, p.defaultTtlMs);
    const scheduled = annotationValue(parsed, 'x-opt-scheduled-enqueue-time');
    const rec = {
        seq,
        parsed,
        entity,
        enqueuedTime: now,
        ttlMs: ttl,
        expiresAt: ttl === Infinity || ttl >= Number.MAX_SAFE_INTEGER ? Infinity : now.getTime() + ttl,
        deliveryCount: 0,
        state: 'active', // active | deferred | scheduled
        lock: null,
        scheduledTime: null,
        extraAppProps: null, // application property name -> rhea typed value, over the client's
        sessionId: parsed.info.group_id === undefined || parsed.info.group_id === null ? null : String(parsed.info.group_id),
    };
    if (scheduled instanceof Date && scheduled.getTime() > now.getTime()) {
        rec.state = 'scheduled';
        rec.scheduledTime = scheduled;
    }
    return rec;
}

function encodeRecord(rec, opts) {
    opts = opts || {};
    const parsed = rec.parsed;
    const w = new types.Writer();
    const header = { durable: !!parsed.info.durable, delivery_count: rec.deliveryCount, first_acquirer: rec.deliveryCount === 0 };
    if (parsed.info.priority !== undefined) header.priority = parsed.info.priority;
    if (rec.ttlMs !== Infinity && rec.ttlMs <= UINT32_MAX) header.ttl = rec.ttlMs;
    w.write(amqpMessage.header(header).described());

    if (opts.lockToken) {
        w.write(types.described_nc(types.wrap_ulong(0x71), types.wrap_symbolic_map({ 'x-opt-lock-token': types.wrap_uuid(opts.lockToken) })));
    }

    const ours = {
        'x-opt-sequence-number': types.wrap_long(rec.seq),
        'x-opt-enqueued-time': types.wrap_timestamp(rec.enqueuedTime.getTime()),
    };
    if (opts.lockToken) {
        ours['x-opt-locked-until'] = types.wrap_timestamp(rec.lock.until);
        ours['x-opt-lock-token'] = types.wrap_uuid(opts.lockToken);
    }
    if (rec.state === 'deferred') ours['x-opt-message-state'] = types.wrap_int(1);
    else if (rec.state === 'scheduled') ours['x-opt-message-state'] = types.wrap_int(2);
    if (rec.deadLetterSource) ours['x-opt-deadletter-source'] = types.wrap_string(rec.deadLetterSource);
    if (rec.scheduledTime) ours['x-opt-scheduled-enqueue-time'] = types.wrap_timestamp(rec.scheduledTime.getTime());
    const items = [];
    const annotations = parsed.annotations;
    for (let i = 0; i + 1 < annotations.length; i += 2) {
        const key = String(annotations[i].value);
        if (ours[key] === undefined) items.push(annotations[i], annotations[i + 1]);
    }
    for (const key of Object.keys(ours)) items.push(types.wrap_symbol(key), ours[key]);
    w.write(types.described_nc(types.wrap_ulong(0x72), types.Map32(items)));

    const chunks = [w.toBuffer()];
    if (parsed.properties) chunks.push(parsed.properties);
    if (rec.extraAppProps) {
        const extra = rec.extraAppProps;
        const appItems = [];
        const old = parsed.appProps ? parsed.appProps.typed.value || [] : [];
        for (let i = 0; i + 1 < old.length; i += 2) {
            if (extra[String(old[i].value)] === undefined) appItems.push(old[i], old[i + 1]);
        }
        for (const key of Object.keys(extra)) appItems.push(types.wrap_string(key), extra[key]);
        const aw = new types.Writer();
        aw.write(types.described_nc(types.wrap_ulong(0x74), types.Map32(appItems)));
        chunks.push(aw.toBuffer());
    } else if (parsed.appProps) {
        chunks.push(parsed.appProps.raw);
    }
    for (const b of parsed.body) chunks.push(b);
    return Buffer.concat(chunks);
}

// typedPairs lists an AMQP map as it came off the wire: [key, rhea typed value] pairs, so a value
// goes back out with the type the client gave it (an int64 stays a long, a uuid a uuid).
function typedPairs(m) {
    const out = [];
    if (!m || !Array.isArray(m.value)) return out;
    for (let i = 0; i + 1 < m.value.length; i += 2) out.push([String(m.value[i].value), m.value[i + 1]]);
    return out;
}

// typedBodyEntry finds key in the amqp-value map body of a received message, typed.
function typedBodyEntry(message, key) {
    const raw = message && message.__raw;
    if (!raw) return undefined;
    const reader = new types.Reader(raw);
    while (reader.remaining()) {
        const s = reader.read();
        if (sectionCode(s) !== 0x77) continue;
        for (const [k, v] of typedPairs(s)) if (k === key) return v; // a described map reads as the map
    }
    return undefined;
}

// modifyProperties applies a settlement's properties-to-modify to the message's application
// properties, as Service Bus does for Abandon, Defer and DeadLetter.
function modifyProperties(rec, pairs) {
    if (!pairs || pairs.length === 0) return;
    rec.extraAppProps = Object.assign({}, rec.extraAppProps || {});
    for (const [k, v] of pairs) rec.extraAppProps[k] = v;
}

function newLockToken() {
    const b = crypto.randomBytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    return b;
}

// dotnetGuidBytes converts RFC 4122 byte order to .NET Guid.ToByteArray order (and back).
function dotnetGuidBytes(rfc) {
    const b = Buffer.from(rfc);
    b[0] = rfc[3]; b[1] = rfc[2]; b[2] = rfc[1]; b[3] = rfc[0];
    b[4] = rfc[5]; b[5] = rfc[4];
    b[6] = rfc[7]; b[7] = rfc[6];
    return b;
}

// ---------- broker operations ----------

// ensureMessageId gives a message sent without a message-id one, as the service does (a GUID as 32
// hex digits): the JavaScript SDK keys lock renewal by it and fails to settle a message without one.
// The other properties keep the client's encoding.
function ensureMessageId(parsed) {
    if (parsed.info.message_id !== undefined && parsed.info.message_id !== null) return;
    const id = types.wrap_string(crypto.randomUUID().replace(/-/g, ''));
    const fields = parsed.typedProperties && Array.isArray(parsed.typedProperties.value) ? parsed.typedProperties.value.slice() : [];
    if (fields.length === 0) fields.push(id);
    else fields[0] = id;
    const w = new types.Writer();
    w.write(types.described_nc(types.wrap_ulong(0x73), types.wrap_list(fields)));
    parsed.properties = w.toBuffer();
    parsed.info.message_id = id.value;
}

function enqueue(target, buf) {
    const parsed = parseMessage(buf);
    ensureMessageId(parsed);
    const now = new Date();
    const seq = nextSequence++;
    const targets = target.kind === 'topic' ? target.subscriptions : [target];
    const recs = [];
    for (const e of targets) {
        const rec = newRecord(e, parsed, seq, now);
        e.messages.set(seq, rec);
        recs.push(rec);
        if (rec.state === 'scheduled') scheduleActivation(rec);
        armExpiry(rec);
        debug('enqueued', seq, 'to', e.name, rec.state);
    }
    for (const e of targets) pump(e);
    return seq;
}

// armExpiry expires a message at its time to live even when no receiver looks at the entity, as the
// service does in the background (a locked or scheduled message is checked again when that ends).
function armExpiry(rec) {
    const delay = rec.expiresAt - Date.now();
    if (!(delay < 2147483647)) return; // Infinity, or beyond what a timer can wait: checked lazily
    rec.expiryTimer = setTimeout(() => {
        rec.expiryTimer = null;
        if (rec.entity.messages.get(rec.seq) === rec) expireIfDue(rec, Date.now());
    }, Math.max(0, delay));
}

function scheduleActivation(rec) {
    const delay = Math.max(0, rec.scheduledTime.getTime() - Date.now());
    rec.scheduleTimer = setTimeout(() => {
        rec.scheduleTimer = null;
        if (rec.state !== 'scheduled' || rec.entity.messages.get(rec.seq) !== rec) return;
        rec.state = 'active';
        rec.enqueuedTime = new Date();
        // A scheduled message's time to live runs from when it is enqueued, its scheduled time.
        if (rec.expiresAt !== Infinity) {
            rec.expiresAt = rec.enqueuedTime.getTime() + rec.ttlMs;
            if (rec.expiryTimer) clearTimeout(rec.expiryTimer);
            armExpiry(rec);
        }
        pump(rec.entity);
    }, delay);
}

function lock(rec, onLink) {
    const e = rec.entity;
    const token = newLockToken();
    rec.lock = { token, until: Date.now() + e.props.lockDurationMs, timer: null, onLink };
    e.byToken.set(token.toString('hex'), rec);
    armLockTimer(rec);
    return token;
}

function armLockTimer(rec) {
    if (rec.lock.timer) clearTimeout(rec.lock.timer);
    const token = rec.lock.token;
    rec.lock.timer = setTimeout(() => {
        if (!rec.lock || !rec.lock.token.equals(token)) return;
        debug('lock expired', rec.seq, rec.entity.name);
        abandon(rec);
    }, Math.max(0, rec.lock.until - Date.now()));
}

function unlock(rec) {
    if (!rec.lock) return;
    clearTimeout(rec.lock.timer);
    rec.entity.byToken.delete(rec.lock.token.toString('hex'));
    rec.lock = null;
}

function removeRecord(rec) {
    unlock(rec);
    if (rec.scheduleTimer) clearTimeout(rec.scheduleTimer);
    if (rec.expiryTimer) clearTimeout(rec.expiryTimer);
    rec.expiryTimer = null;
    rec.entity.messages.delete(rec.seq);
}

function complete(rec) {
    removeRecord(rec);
}

// abandon ends a delivery attempt that counts (Abandon, lock expiry): the delivery count rises and,
// at MaxDeliveryCount, the message is dead-lettered.
function abandon(rec, properties) {
    unlock(rec);
    modifyProperties(rec, properties);
    rec.deliveryCount++;
    const e = rec.entity;
    if (e.kind !== 'dlq' && rec.deliveryCount >= e.props.maxDeliveryCount) {
        deadLetter(rec, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${e.props.maxDeliveryCount} delivery attempts.`);
        return;
    }
    pump(e);
}

// release puts a message back without counting a delivery (surplus prefetch).
function release(rec) {
    unlock(rec);
    pump(rec.entity);
}

function defer(rec, properties) {
    unlock(rec);
    modifyProperties(rec, properties);
    rec.state = 'deferred';
}

function deadLetter(rec, reason, description, properties) {
    const e = rec.entity;
    if (e.kind === 'dlq') {
        // A dead-lettered message cannot be dead-lettered again; it is put back.
        unlock(rec);
        pump(e);
        return;
    }
    removeRecord(rec);
    rec.entity = e.dlq;
    rec.state = 'active';
    rec.expiresAt = Infinity;
    modifyProperties(rec, properties);
    modifyProperties(rec, [
        ['DeadLetterReason', types.wrap_string(reason === undefined || reason === null ? '' : String(reason))],
        ['DeadLetterErrorDescription', types.wrap_string(description === undefined || description === null ? '' : String(description))],
    ]);
    e.dlq.messages.set(rec.seq, rec);
    debug('dead-lettered', rec.seq, 'from', e.name, reason);
    pump(e.dlq);
}

function expireIfDue(rec, now) {
    if (rec.lock || rec.state === 'scheduled' || rec.expiresAt === Infinity || rec.expiresAt > now) return false;
    const e = rec.entity;
    if (e.props.deadLetterOnExpiration && e.kind !== 'dlq') {
        deadLetter(rec, 'TTLExpiredException', 'The message expired and was dead lettered.');
    } else {
        removeRecord(rec);
    }
    return true;
}

// ---------- delivering to receivers ----------

function unsent(link) {
    const next = link.session.outgoing.next_pending_delivery;
    link.__unsent = (link.__unsent || []).filter((d) => d.id >= next);
    return link.__unsent.length;
}

function availableCredit(link) {
    if (!link.is_open() || link.__closed) return 0;
    return link.credit - unsent(link);
}

function pump(entity) {
    if (!entity || entity.kind === 'topic') return;
    if (isSessionful(entity)) serveSessionWaiters(entity);
    entity.consumers = entity.consumers.filter((l) => !l.__closed && !l.is_closed());
    if (entity.consumers.length === 0) return;
    const now = Date.now();
    for (const rec of Array.from(entity.messages.values())) {
        if (rec.state !== 'active' || rec.lock) continue;
        if (expireIfDue(rec, now)) continue;
        if (isSessionful(entity)) {
            // A session's messages go only to the receiver holding that session.
            const link = rec.sessionId === null ? null : sessionConsumer(entity, rec.sessionId);
            if (link) deliver(rec, link);
            continue;
        }
        const link = nextConsumer(entity);
        if (!link) break;
        deliver(rec, link);
    }
    for (const l of entity.consumers) {
        if (l.__draining && availableCredit(l) > 0) {
            l.set_drained(true);
        }
    }
}

// ---------- sessions ----------

// isSessionful tells whether receiving from entity needs a session: a queue or subscription with
// RequiresSession (its dead-letter queues do not).
function isSessionful(entity) {
    return !!(entity && entity.kind !== 'dlq' && entity.kind !== 'topic' && entity.props && entity.props.requiresSession);
}

function sessionConsumer(entity, id) {
    const sess = entity.sessions.get(id);
    const link = sess && sess.holder;
    return link && availableCredit(link) > 0 ? link : null;
}

function sessionHeld(sess) {
    return !!(sess && sess.holder && !sess.holder.__closed && sess.holder.is_open());
}

// nextFreeSession picks the session of the oldest available message that no receiver holds.
function nextFreeSession(entity) {
    for (const rec of entity.messages.values()) {
        if (rec.state !== 'active' || rec.lock || rec.sessionId === null) continue;
        if (!sessionHeld(entity.sessions.get(rec.sessionId))) return rec.sessionId;
    }
    return null;
}

function lockSession(entity, id, link) {
    let sess = entity.sessions.get(id);
    if (!sess) {
        sess = { id, holder: null, until: 0, timer: null, state: null };
        entity.sessions.set(id, sess);
    }
    sess.holder = link;
    link.__session = sess;
    armSessionLock(entity, sess, Date.now() + entity.props.lockDurationMs);
    return sess;
}

// armSessionLock (re)starts a session lock; when it runs out the receiver loses the session, as on
// Service Bus: its link is detached with com.microsoft:session-lock-lost.
function armSessionLock(entity, sess, until) {
    sess.until = until;
    if (sess.timer) clearTimeout(sess.timer);
    sess.timer = setTimeout(() => {
        const link = sess.holder;
        releaseSession(entity, sess);
        if (link && link.is_open()) {
            link.close({ condition: 'com.microsoft:session-lock-lost', description: `The session lock has expired on the MessageSession. Accept a new MessageSession. Session '${sess.id}'.` });
        }
    }, Math.max(0, until - Date.now()));
}

function releaseSession(entity, sess) {
    if (sess.timer) clearTimeout(sess.timer);
    sess.timer = null;
    if (sess.holder) sess.holder.__session = null;
    sess.holder = null;
    if (sess.state === null && !Array.from(entity.messages.values()).some((r) => r.sessionId === sess.id)) entity.sessions.delete(sess.id);
    pump(entity);
}

function releaseLinkSession(link) {
    const sess = link.__session;
    if (sess && link.__entity) releaseSession(link.__entity, sess);
}

// netTicks is a time as .NET DateTime ticks (100 ns since 0001-01-01), an int64 the way Service Bus
// sends com.microsoft:locked-until-utc on a session receiver's attach.
function netTicks(ms) {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE((BigInt(ms) + 62135596800000n) * 10000n);
    return types.wrap_long(b);
}

// sessionFilterValue is the session a receiver asks for: a string, or null for the next free one.
function sessionFilterValue(source) {
    let v = source.filter['com.microsoft:session-filter'];
    while (v && typeof v === 'object' && !Buffer.isBuffer(v) && 'value' in v) v = v.value;
    return v === undefined || v === null ? null : String(v);
}

function nextConsumer(entity) {
    const n = entity.consumers.length;
    for (let i = 0; i < n; i++) {
        const link = entity.consumers[(entity.rr + i) % n];
        if (availableCredit(link) > 0) {
            entity.rr = (entity.rr + i + 1) % n;
            return link;
        }
    }
    return null;
}

function deliver(rec, link) {
    const receiveAndDelete = link.__receiveAndDelete;
    let token = null;
    if (receiveAndDelete) {
        removeRecord(rec);
    } else {
        token = lock(rec, link);
    }
    const buf = encodeRecord(rec, { lockToken: token });
    const tag = token ? dotnetGuidBytes(token) : dotnetGuidBytes(newLockToken());
    const d = link.send(buf, tag, 0);
    if (receiveAndDelete) d.settled = true;
    else d.__sb = { rec, token };
    link.__unsent = link.__unsent || [];
    link.__unsent.push(d);
    debug('delivered', rec.seq, 'from', rec.entity.name, receiveAndDelete ? 'receive-and-delete' : 'peek-lock', 'count', rec.deliveryCount);
}

function lockHeld(info) {
    return info && info.rec.lock && info.rec.lock.token.equals(info.token);
}

function settleDelivery(delivery, state) {
    delivery.update(true, state);
}

const lockLostError = {
    condition: 'com.microsoft:message-lock-lost',
    description: 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
};

function onOutcome(kind, context) {
    const d = context.delivery;
    const info = d.__sb;
    if (!info || d.__sbDone) return;
    d.__sbDone = true;
    if (!lockHeld(info)) {
        if (kind !== 'released') settleDelivery(d, amqpMessage.rejected({ error: lockLostError }).described());
        else settleDelivery(d, amqpMessage.released().described());
        return;
    }
    const rec = info.rec;
    const state = d.remote_state;
    switch (kind) {
        case 'accepted':
            complete(rec);
            settleDelivery(d, amqpMessage.accepted().described());
            break;
        case 'released':
            release(rec);
            settleDelivery(d, amqpMessage.released().described());
            break;
        case 'modified': {
            const props = typedPairs(state && state.value ? state.value[2] : undefined);
            if (state && state.undeliverable_here) defer(rec, props);
            else abandon(rec, props);
            settleDelivery(d, amqpMessage.modified({ delivery_failed: !!(state && state.delivery_failed), undeliverable_here: !!(state && state.undeliverable_here) }).described());
            break;
        }
        case 'rejected': {
            const err = (state && state.error) || {};
            const condition = err.condition ? String(err.condition) : '';
            const infoMap = err.info || {};
            if (condition === 'com.microsoft:dead-letter' || condition === '') {
                // The error's info carries the reason, the description and any properties to modify.
                const typedErr = state && state.value ? state.value[0] : undefined;
                const fields = typedErr && Array.isArray(typedErr.value) ? typedErr.value : [];
                const props = typedPairs(fields[2]).filter(([k]) => k !== 'DeadLetterReason' && k !== 'DeadLetterErrorDescription');
                deadLetter(rec, infoMap.DeadLetterReason, infoMap.DeadLetterErrorDescription, props);
            } else {
                abandon(rec);
            }
            // Like Service Bus, answer a dead-letter with a bare rejected outcome: an error in it
            // would fail the client's DeadLetterMessage.
            settleDelivery(d, amqpMessage.rejected({}).described());
            break;
        }
    }
    debug('settled on link', kind, rec.seq);
}

// ---------- $cbs and $management ----------

// replyLink finds the link a reply goes to: the one whose target address is the request's reply-to
// (the Go SDK's way), else the one named so (the JavaScript and .NET SDKs attach their reply link with
// name = reply-to and no target address).
function replyLink(context, replyTo) {
    const conn = context.connection;
    const key = String(replyTo || '');
    const byAddress = conn.__replyLinks && conn.__replyLinks.get(key);
    if (byAddress && byAddress.is_open()) return byAddress;
    const byName = conn.__replyLinksByName && conn.__replyLinksByName.get(key);
    if (byName && byName.is_open()) return byName;
    debug('no reply link for', replyTo);
    return null;
}

// reply answers a $management request as the service does: statusCode and statusDescription
// (https://learn.microsoft.com/azure/service-bus-messaging/service-bus-amqp-request-response),
// int32 and string. errorCondition names the AMQP condition of a failure.
function reply(context, request, statusCode, description, body, condition) {
    const sender = replyLink(context, request.reply_to);
    if (!sender) return;
    const props = {
        statusCode: types.wrap_int(statusCode),
        statusDescription: description,
    };
    if (condition) props.errorCondition = condition;
    const msg = { correlation_id: request.message_id, application_properties: props };
    if (body !== undefined) msg.body = body;
    sender.send(msg);
}

// handleCbs answers a put-token. CBS replies keep the AMQP CBS draft's status-code and
// status-description, which is what the service sends on $cbs and what every SDK reads there.
function handleCbs(context) {
    const req = context.message;
    debug('cbs put-token for', req.application_properties && req.application_properties.name);
    const sender = replyLink(context, req.reply_to);
    if (!sender) return;
    sender.send({
        correlation_id: req.message_id,
        application_properties: {
            'status-code': types.wrap_int(202),
            'status-description': 'Accepted',
        },
    });
}

function uuidKey(v) {
    if (Buffer.isBuffer(v)) return v.toString('hex');
    if (v && Buffer.isBuffer(v.value)) return v.value.toString('hex');
    if (typeof v === 'string') return v.replace(/-/g, '').toLowerCase();
    return '';
}

function asArray(v) {
    if (v === undefined || v === null) return [];
    return Array.isArray(v) ? v : [v];
}

function messagesBody(recs, withLock) {
    return {
        messages: recs.map((rec) => {
            const entry = { message: encodeRecord(rec, { lockToken: withLock ? rec.lock.token : null }) };
            if (withLock) entry['lock-token'] = types.wrap_uuid(rec.lock.token);
            return entry;
        }),
    };
}

function handleManagement(context, entity) {
    const req = context.message;
    const op = req.application_properties && req.application_properties.operation;
    const body = req.body || {};
    debug('management', op, 'on', entity.name);
    try {
        switch (op) {
            case 'com.microsoft:renew-lock': {
                const expirations = [];
                for (const t of asArray(body['lock-tokens'])) {
                    const rec = entity.byToken.get(uuidKey(t));
                    if (!rec) return replyError(context, req, 410, 'com.microsoft:message-lock-lost', lockLostError.description);
                    rec.lock.until = Date.now() + entity.props.lockDurationMs;
                    armLockTimer(rec);
                    expirations.push(rec.lock.until);
                }
                return reply(context, req, 200, 'OK', { expirations: types.wrap_array(expirations, 0x83) });
            }
            case 'com.microsoft:peek-message': {
                const from = Number(body['from-sequence-number'] || 0);
                const count = Math.max(1, Number(body['message-count'] || 1));
                const now = Date.now();
                const sid = body['session-id'];
                const recs = Array.from(entity.messages.values())
                    .filter((r) => !expireIfDue(r, now))
                    .filter((r) => r.seq >= from)
                    .filter((r) => sid === undefined || sid === null || r.sessionId === String(sid))
                    .sort((a, b) => a.seq - b.seq)
                    .slice(0, count);
                if (recs.length === 0) return reply(context, req, 204, 'No Content');
                return reply(context, req, 200, 'OK', messagesBody(recs, false));
            }
            case 'com.microsoft:receive-by-sequence-number': {
                const peekLock = Number(body['receiver-settle-mode'] || 0) === 1;
                const recs = [];
                for (const s of asArray(body['sequence-numbers'])) {
                    const rec = entity.messages.get(Number(s));
                    const sid = body['session-id'];
                    if (!rec || rec.state !== 'deferred' || rec.lock || (sid !== undefined && sid !== null && rec.sessionId !== String(sid))) {
                        // As on Service Bus: every requested message must be a deferred, unlocked one.
                        return replyError(context, req, 404, 'com.microsoft:message-not-found',
                            `Failed to lock one or more specified messages. The message with sequence number ${s} was not found or is locked.`);
                    }
                    recs.push(rec);
                }
                for (const rec of recs) {
                    if (peekLock) lock(rec, null);
                }
                const out = messagesBody(recs, peekLock);
                if (!peekLock) recs.forEach(removeRecord);
                return reply(context, req, 200, 'OK', out);
            }
            case 'com.microsoft:update-disposition': {
                const status = String(body['disposition-status'] || '');
                if (!['completed', 'abandoned', 'defered', 'deferred', 'suspended'].includes(status)) {
                    return replyError(context, req, 400, 'amqp:invalid-field', 'unknown disposition-status ' + status);
                }
                const recs = [];
                for (const t of asArray(body['lock-tokens'])) {
                    const rec = entity.byToken.get(uuidKey(t));
                    if (!rec) return replyError(context, req, 410, 'com.microsoft:message-lock-lost', lockLostError.description);
                    recs.push(rec);
                }
                const props = typedPairs(typedBodyEntry(req, 'properties-to-modify'));
                for (const rec of recs) {
                    switch (status) {
                        case 'completed': complete(rec); break;
                        case 'abandoned': abandon(rec, props); break;
                        case 'defered': case 'deferred': defer(rec, props); break;
                        default: deadLetter(rec, body['deadletter-reason'], body['deadletter-description'], props); break;
                    }
                }
                return reply(context, req, 200, 'OK');
            }
            case 'com.microsoft:schedule-message': {
                const seqs = [];
                const entries = asArray(body.messages);
                for (const entry of entries) {
                    const raw = entry && entry.message;
                    if (!Buffer.isBuffer(raw)) return replyError(context, req, 400, 'amqp:invalid-field', 'message is not binary');
                    if (isSessionful(entity) && !hasSessionId(amqpMessage.decode(raw))) {
                        return replyError(context, req, 400, noSessionIdError.condition, noSessionIdError.description);
                    }
                }
                for (const entry of entries) seqs.push(enqueue(entity.__topic || entity, entry.message));
                return reply(context, req, 200, 'OK', { 'sequence-numbers': types.wrap_array(seqs, 0x81) });
            }
            case 'com.microsoft:cancel-scheduled-message': {
                const targets = entity.kind === 'topic' ? entity.subscriptions : [entity];
                for (const s of asArray(body['sequence-numbers'])) {
                    for (const e of targets) {
                        const rec = e.messages.get(Number(s));
                        if (rec && rec.state === 'scheduled') removeRecord(rec);
                    }
                }
                return reply(context, req, 200, 'OK');
            }
            case 'com.microsoft:renew-session-lock':
            case 'com.microsoft:get-session-state':
            case 'com.microsoft:set-session-state': {
                const sid = body['session-id'];
                const sess = sid === undefined || sid === null ? null : entity.sessions.get(String(sid));
                // The request names the receiver it comes from (associated-link-name): only the
                // session's holder may renew it or use its state.
                const from = req.application_properties && req.application_properties['associated-link-name'];
                if (!isSessionful(entity) || !sessionHeld(sess) || (from && String(from) !== String(sess.holder.name))) {
                    return replyError(context, req, 410, 'com.microsoft:session-lock-lost',
                        `The session lock has expired on the MessageSession. Accept a new MessageSession. Session '${sid}'.`);
                }
                if (op === 'com.microsoft:renew-session-lock') {
                    armSessionLock(entity, sess, Date.now() + entity.props.lockDurationMs);
                    return reply(context, req, 200, 'OK', { expiration: types.wrap_timestamp(sess.until) });
                }
                if (op === 'com.microsoft:get-session-state') {
                    return reply(context, req, 200, 'OK', { 'session-state': sess.state === null ? null : types.wrap_binary(sess.state) });
                }
                const state = body['session-state'];
                sess.state = state === undefined || state === null ? null : Buffer.from(state);
                return reply(context, req, 200, 'OK', {});
            }
            default:
                return replyError(context, req, 501, 'com.microsoft:not-implemented', 'operation ' + op + ' is not supported by the emulator');
        }
    } catch (err) {
        console.error('management operation', op, 'failed:', err);
        return replyError(context, req, 500, 'amqp:internal-error', String(err && err.message));
    }
}

function replyError(context, req, code, condition, description) {
    reply(context, req, code, description, undefined, condition);
}

// ---------- links ----------

function remoteAddress(terminus) {
    return terminus && terminus.address ? String(terminus.address) : '';
}

function notFound(link, address) {
    link.close({ condition: 'amqp:not-found', description: `The messaging entity '${address}' could not be found.` });
}

// refuse answers an attach with a null terminus, then detaches with the error: the way to refuse a
// link (AMQP 1.0, 2.6.3), which clients report as the error instead of reading the attach first.
function refuse(link, error) {
    if (link.is_sender()) link.local.attach.source = null;
    else link.local.attach.target = null;
    link.open(); // a no-op unless the answer was held back (waitForSession)
    link.close(error);
}

// sessionFilter tells whether a receiver asks for a session (com.microsoft:session-filter).
function sessionFilter(source) {
    const f = source && source.filter;
    return !!f && Object.prototype.hasOwnProperty.call(f, 'com.microsoft:session-filter');
}

const container = rhea.create_container({
    id: 'servicebus-emulator',
    autoaccept: false,
    treat_modified_as_released: false,
});
container.sasl_server_mechanisms.enable_anonymous();
container.sasl_server_mechanisms.enable_plain(() => true);

function mirrorTermini(link) {
    const remote = link.remote.attach || {};
    if (remote.source) link.set_source({ address: remoteAddress(remote.source) });
    if (remote.target) link.set_target({ address: remoteAddress(remote.target) });
    if (remote.snd_settle_mode !== undefined) link.local.attach.snd_settle_mode = remote.snd_settle_mode;
    if (remote.rcv_settle_mode !== undefined) link.local.attach.rcv_settle_mode = remote.rcv_settle_mode;
}

// A client receiver attaches: rhea gives us a sender.
container.on('sender_open', (context) => {
    const link = context.sender;
    mirrorTermini(link);
    const address = normalizeAddress(remoteAddress(link.remote.attach.source));
    if (address === '$cbs' || /\/\$management$/i.test(address)) {
        const target = remoteAddress(link.remote.attach.target);
        const conn = context.connection;
        conn.__replyLinks = conn.__replyLinks || new Map();
        conn.__replyLinksByName = conn.__replyLinksByName || new Map();
        if (target) conn.__replyLinks.set(target, link);
        conn.__replyLinksByName.set(String(link.name), link);
        link.__kind = 'reply';
        return;
    }
    const entity = lookup(address);
    if (!entity || entity.kind === 'topic') {
        if (entity) link.close({ condition: 'amqp:not-allowed', description: `Cannot receive from topic '${address}'.` });
        else notFound(link, address);
        return;
    }
    if (isSessionful(entity)) {
        if (!sessionFilter(link.remote.attach.source)) {
            return refuse(link, {
                condition: 'amqp:not-allowed',
                description: `It is not possible for an entity that requires sessions to create a non-sessionful message receiver: '${entity.name}' requires sessions.`,
            });
        }
        let id = sessionFilterValue(link.remote.attach.source);
        if (id === null) {
            id = nextFreeSession(entity);
            if (id === null) return waitForSession(link, entity);
        } else if (sessionHeld(entity.sessions.get(id))) {
            return refuse(link, {
                condition: 'com.microsoft:session-cannot-be-locked',
                description: `The requested session '${id}' cannot be accepted. It may be locked by another receiver.`,
            });
        }
        return grantSession(link, entity, id);
    }
    if (sessionFilter(link.remote.attach.source)) {
        refuse(link, {
            condition: 'amqp:not-allowed',
            description: `It is not possible for an entity that does not require sessions to create a session-ful receiver: '${entity.name}' does not require sessions.`,
        });
        return;
    }
    link.__entity = entity;
    link.__receiveAndDelete = link.remote.attach.snd_settle_mode === 1;
    entity.consumers.push(link);
    debug('receiver attached to', entity.name, link.__receiveAndDelete ? 'receive-and-delete' : 'peek-lock');
    setImmediate(() => pump(entity));
});

// grantSession locks session id to the receiver link and answers its attach.
function grantSession(link, entity, id) {
    const sess = lockSession(entity, id, link);
    const sid = id;
    // The session granted goes back in the filter, encoded as the client sent its own: Go sends a
    // described value (descriptor 0x137000000C) and reads one back; JavaScript a plain string.
    const asked = link.remote.attach.source.filter['com.microsoft:session-filter'];
    const described = !!asked && typeof asked === 'object' && asked.descriptor !== undefined;
    link.set_source({
        address: remoteAddress(link.remote.attach.source),
        filter: { 'com.microsoft:session-filter': { toRheaTyped: () => (described
            ? types.described(types.wrap_ulong(0x137000000C), types.wrap_string(sid))
            : types.wrap_string(sid)) } },
    });
    link.local.attach.properties = { 'com.microsoft:locked-until-utc': { toRheaTyped: () => netTicks(sess.until) } };
    link.__entity = entity;
    link.__receiveAndDelete = link.remote.attach.snd_settle_mode === 1;
    entity.consumers.push(link);
    link.open(); // answers the attach now if it was held back while waiting for a session
    debug('session receiver attached to', entity.name, 'session', id);
    setImmediate(() => pump(entity));
}

// waitForSession holds back the answer to a receiver that asked for the next free session while
// none is free, as Service Bus does, until one frees up or the client's com.microsoft:timeout (else a
// minute) passes; then the attach is refused with com.microsoft:timeout.
function waitForSession(link, entity) {
    link.state.local_open = false; // rhea opened it on the attach; take that back until there is an answer
    link.state.open_requests = Math.max(0, link.state.open_requests - 1);
    const props = link.remote.attach.properties || {};
    const timeout = Number(props['com.microsoft:timeout']) > 0 ? Number(props['com.microsoft:timeout']) : 60 * 1000;
    const waiter = { link, timer: null };
    waiter.timer = setTimeout(() => {
        entity.sessionWaiters = entity.sessionWaiters.filter((w) => w !== waiter);
        if (waitingLinkGone(link)) return;
        refuse(link, { condition: 'com.microsoft:timeout', description: `No unlocked session with messages became available on '${entity.name}' within ${timeout} ms.` });
    }, timeout);
    entity.sessionWaiters.push(waiter);
    debug('session receiver waits for a free session on', entity.name);
}

function waitingLinkGone(link) {
    return link.__closed || !link.state.remote_open || link.connection.is_closed();
}

// serveSessionWaiters gives free sessions to receivers waiting for the next one, oldest first.
function serveSessionWaiters(entity) {
    if (!entity.sessionWaiters || entity.sessionWaiters.length === 0) return;
    const waiting = entity.sessionWaiters;
    entity.sessionWaiters = [];
    for (const w of waiting) {
        if (waitingLinkGone(w.link)) {
            clearTimeout(w.timer);
            continue;
        }
        const id = nextFreeSession(entity);
        if (id === null) {
            entity.sessionWaiters.push(w);
            continue;
        }
        clearTimeout(w.timer);
        grantSession(w.link, entity, id);
    }
}

// A client sender attaches: rhea gives us a receiver.
container.on('receiver_open', (context) => {
    const link = context.receiver;
    mirrorTermini(link);
    link.local.attach.max_message_size = tier.maxMessageSize;
    link.__maxMessageSize = tier.maxMessageSize;
    const address = normalizeAddress(remoteAddress(link.remote.attach.target));
    if (address === '$cbs') {
        link.__kind = 'cbs';
        return;
    }
    const mgmt = /^(.*)\/\$management$/i.exec(address);
    if (mgmt) {
        const entity = lookup(mgmt[1]);
        if (!entity) return notFound(link, address);
        link.__kind = 'management';
        link.__entity = entity;
        // A scheduled message travels inside a management request, so the entity's limit holds here too.
        link.local.attach.max_message_size = link.__maxMessageSize = entity.maxMessageSize;
        return;
    }
    const entity = lookup(address);
    if (!entity || entity.kind === 'dlq' || entity.kind === 'subscription') {
        if (entity) link.close({ condition: 'amqp:not-allowed', description: `Cannot send to '${address}'.` });
        else notFound(link, address);
        return;
    }
    link.local.attach.max_message_size = link.__maxMessageSize = entity.maxMessageSize;
    link.__kind = 'entity';
    link.__entity = entity;
    debug('sender attached to', entity.name);
});

const noSessionIdError = {
    condition: 'amqp:not-allowed',
    description: 'The SessionId was not set on a message, and it cannot be sent to the entity. Entities that have session support enabled can only receive messages that have the SessionId set to a valid value.',
};

function hasSessionId(msg) {
    return msg && msg.group_id !== undefined && msg.group_id !== null && String(msg.group_id) !== '';
}

// allHaveSessionIds checks every message of a transfer (one, or each of a batch) names its session.
function allHaveSessionIds(context) {
    if (context.format === undefined) return hasSessionId(context.message);
    const reader = new types.Reader(context.message);
    while (reader.remaining()) {
        const s = reader.read();
        if (sectionCode(s) === 0x75 && !hasSessionId(amqpMessage.decode(s.value))) return false;
    }
    return true;
}

// tooLarge refuses a transfer over the link's max-message-size: the delivery is rejected with
// amqp:link:message-size-exceeded and the service's wording. The link stays attached, so what the
// client sends next on it is not lost in a detach (it would be sent again, twice over).
function tooLarge(context) {
    const link = context.receiver;
    const raw = context.format === undefined ? context.message && context.message.__raw : context.message;
    const size = Buffer.isBuffer(raw) ? raw.length : 0;
    if (!link.__maxMessageSize || size <= link.__maxMessageSize) return false;
    const error = {
        condition: 'amqp:link:message-size-exceeded',
        description: `The received message (delivery-id:${context.delivery.id}, size:${size} bytes) exceeds the limit (${link.__maxMessageSize} bytes) currently allowed on the link.`,
    };
    debug('refused a transfer of', size, 'bytes on', link.name);
    context.delivery.reject(error);
    return true;
}

container.on('message', (context) => {
    const link = context.receiver;
    const delivery = context.delivery;
    if (tooLarge(context)) return;
    try {
        switch (link.__kind) {
            case 'cbs':
                handleCbs(context);
                delivery.accept();
                return;
            case 'management': {
                const entity = link.__entity;
                if (entity.kind === 'topic') entity.__topic = entity;
                handleManagement(context, entity);
                delivery.accept();
                return;
            }
            case 'entity': {
                const raw = context.format === undefined ? context.message.__raw : context.message;
                if (isSessionful(link.__entity) && !allHaveSessionIds(context)) {
                    delivery.reject(noSessionIdError);
                    return;
                }
                if (context.format === undefined) {
                    enqueue(link.__entity, raw || amqpMessage.encode(context.message));
                } else if (context.format === BATCH_FORMAT) {
                    const reader = new types.Reader(raw);
                    while (reader.remaining()) {
                        const s = reader.read();
                        if (sectionCode(s) === 0x75) enqueue(link.__entity, s.value);
                    }
                } else {
                    enqueue(link.__entity, raw);
                }
                delivery.accept();
                return;
            }
            default:
                delivery.reject({ condition: 'amqp:not-allowed', description: 'link is not usable' });
        }
    } catch (err) {
        console.error('handling a transfer failed:', err);
        delivery.reject({ condition: 'amqp:internal-error', description: String(err && err.message) });
    }
});

for (const kind of ['accepted', 'released', 'modified', 'rejected']) {
    container.on(kind, (context) => onOutcome(kind, context));
}

container.on('sender_flow', (context) => {
    const link = context.sender;
    link.__draining = !!link._draining;
    if (link.__entity) pump(link.__entity);
    if (link.__draining && link.__entity) link.set_drained(true);
});
container.on('sendable', (context) => {
    if (context.sender.__entity) pump(context.sender.__entity);
});

function forgetLink(link) {
    link.__closed = true;
    releaseLinkSession(link);
}
container.on('sender_close', (context) => forgetLink(context.sender));
container.on('receiver_close', (context) => forgetLink(context.receiver));
container.on('disconnected', (context) => {
    const conn = context.connection;
    for (const e of entities.values()) {
        if (e.consumers) {
            for (const l of e.consumers) if (l.connection === conn) releaseLinkSession(l);
            e.consumers = e.consumers.filter((l) => l.connection !== conn);
        }
    }
    debug('connection dropped', context.error ? String(context.error) : '');
});
container.on('connection_close', (context) => {
    const conn = context.connection;
    for (const e of entities.values()) {
        if (e.consumers) {
            for (const l of e.consumers) if (l.connection === conn) releaseLinkSession(l);
            e.consumers = e.consumers.filter((l) => l.connection !== conn);
        }
    }
});
for (const ev of ['sender_error', 'receiver_error', 'session_error', 'connection_error', 'protocol_error']) {
    container.on(ev, (context) => debug(ev, context.error ? String(context.error.description || context.error) : ''));
}
container.on('error', (err) => console.error('amqp error:', err && err.message ? err.message : err));

// ---------- main ----------

function main() {
    let args;
    try {
        args = parseArgs(process.argv.slice(2));
        tier = TIERS[String(args.tier).toLowerCase()];
        loadConfig(args.config);
    } catch (err) {
        console.error('servicebus emulator:', err.message);
        process.exit(2);
    }
    const sockets = new Set();
    const server = container.listen({ host: args.host, port: args.port });
    server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
    });
    server.on('listening', () => {
        const addr = server.address();
        const host = addr.family === 'IPv6' || addr.family === 6 ? `[${addr.address}]` : addr.address;
        console.log(`Service Bus emulator listening at amqp://${host}:${addr.port}`);
    });
    server.on('error', (err) => {
        console.error('servicebus emulator:', err.message);
        process.exit(1);
    });
    let stopping = false;
    const stop = (signal) => {
        if (stopping) return;
        stopping = true;
        debug('stopping on', signal);
        server.close();
        for (const s of sockets) s.destroy();
        setImmediate(() => process.exit(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
}

main();
