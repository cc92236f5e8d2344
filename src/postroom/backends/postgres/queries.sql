-- The SQL of the postgresql:// backend, one named block per statement.
--
-- A block starts with a line "-- name: <name>" and runs to the next one; the
-- comment lines after the name say what the statement is for. {schema} is
-- replaced by the quoted schema name of the URL (default "postroom"). Times are
-- milliseconds since the epoch. A message row is either visible from "due" on
-- (token IS NULL) or leased until "due" (token IS NOT NULL). Statements that
-- change a queue tell waiting consumers with pg_notify(%(channel)s, queue):
-- NOTIFY is delivered when the transaction commits, never before.

-- name: schema
-- Tables and indexes; every statement is idempotent (run by connect() under an
-- advisory lock, so that concurrent first connections do not race).
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.queues (
    name text PRIMARY KEY,
    policy jsonb NOT NULL,
    max_attempts integer NOT NULL,
    sent bigint NOT NULL DEFAULT 0,
    acked bigint NOT NULL DEFAULT 0,
    retried bigint NOT NULL DEFAULT 0,
    dead_lettered bigint NOT NULL DEFAULT 0,
    redriven bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {schema}.messages (
    queue text NOT NULL,
    id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    body bytea NOT NULL,
    headers jsonb NOT NULL,
    enqueued_at bigint NOT NULL,
    available_at bigint NOT NULL,
    due bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    dedup_key text,
    redrives integer NOT NULL DEFAULT 0,
    token text,
    consumer text NOT NULL DEFAULT '',
    history jsonb NOT NULL DEFAULT '[]',
    grp text,
    priority smallint NOT NULL DEFAULT 0,
    blocked boolean NOT NULL DEFAULT false,
    PRIMARY KEY (queue, id)
);
-- A schema made before groups and priorities gets their columns: a message of a
-- group is "blocked" while another message of its group was sent before it.
ALTER TABLE {schema}.messages ADD COLUMN IF NOT EXISTS grp text;
ALTER TABLE {schema}.messages
    ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0;
ALTER TABLE {schema}.messages
    ADD COLUMN IF NOT EXISTS blocked boolean NOT NULL DEFAULT false;
DROP INDEX IF EXISTS {schema}.messages_visible;
CREATE INDEX IF NOT EXISTS messages_ready
    ON {schema}.messages (queue, priority DESC, due, seq)
    WHERE token IS NULL AND NOT blocked;
CREATE INDEX IF NOT EXISTS messages_group
    ON {schema}.messages (queue, grp, seq) WHERE grp IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_leased
    ON {schema}.messages (queue, due) WHERE token IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_order ON {schema}.messages (queue, seq);
CREATE TABLE IF NOT EXISTS {schema}.dead (
    queue text NOT NULL,
    id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    body bytea NOT NULL,
    headers jsonb NOT NULL,
    enqueued_at bigint NOT NULL,
    available_at bigint NOT NULL,
    attempts integer NOT NULL,
    dedup_key text,
    redrives integer NOT NULL,
    reason text NOT NULL,
    error jsonb,
    history jsonb NOT NULL,
    dead_at bigint NOT NULL,
    grp text,
    priority smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, id)
);
ALTER TABLE {schema}.dead ADD COLUMN IF NOT EXISTS grp text;
ALTER TABLE {schema}.dead ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS dead_order ON {schema}.dead (queue, seq);
CREATE TABLE IF NOT EXISTS {schema}.dedup (
    queue text NOT NULL,
    key text NOT NULL,
    id text NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (queue, key)
);
CREATE TABLE IF NOT EXISTS {schema}.subscriptions (
    topic text NOT NULL,
    name text NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (topic, name)
);
CREATE TABLE IF NOT EXISTS {schema}.topics (
    topic text PRIMARY KEY,
    published bigint NOT NULL DEFAULT 0,
    unrouted bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {schema}.durations (
    queue text NOT NULL,
    bucket text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (queue, bucket)
);
CREATE TABLE IF NOT EXISTS {schema}.workers (
    id text PRIMARY KEY,
    record text NOT NULL,
    expires_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.samples (
    bucket bigint PRIMARY KEY,
    record text NOT NULL,
    expires_at bigint NOT NULL
);
-- The token bucket of each rate-limited queue: `tokens` left at time `at`.
CREATE TABLE IF NOT EXISTS {schema}.rates (
    queue text PRIMARY KEY,
    rate double precision NOT NULL,
    burst double precision NOT NULL,
    tokens double precision NOT NULL,
    at bigint NOT NULL
);

-- name: schema_ready
-- Whether the last table of the schema exists (the schema is created in one
-- transaction, so then every table does).
SELECT to_regclass(%(table)s) IS NOT NULL;

-- name: schema_lock
SELECT pg_advisory_xact_lock(hashtext(%(key)s));

-- name: get_queue
SELECT policy, max_attempts FROM {schema}.queues WHERE name = %(queue)s;

-- name: upsert_queue
-- Create a queue or replace its policy, keeping its counters; a rate limit gets
-- (or keeps) a token bucket, full when new.
WITH q AS (
    INSERT INTO {schema}.queues (name, policy, max_attempts)
    VALUES (%(queue)s, %(policy)s, %(max_attempts)s)
    ON CONFLICT (name) DO UPDATE
    SET policy = excluded.policy, max_attempts = excluded.max_attempts
    RETURNING policy
), unlimited AS (
    DELETE FROM {schema}.rates
    WHERE queue = %(queue)s AND %(rate)s::float8 IS NULL
), limited AS (
    INSERT INTO {schema}.rates AS r (queue, rate, burst, tokens, at)
    SELECT %(queue)s, %(rate)s, %(burst)s, %(burst)s, 0
    WHERE %(rate)s::float8 IS NOT NULL
    ON CONFLICT (queue) DO UPDATE
    SET rate = excluded.rate, burst = excluded.burst,
        tokens = least(r.tokens, excluded.burst)
)
SELECT policy FROM q;

-- name: insert_queue
-- Create a queue unless it exists (send to an unknown name); the stored policy.
WITH ins AS (
    INSERT INTO {schema}.queues (name, policy, max_attempts)
    VALUES (%(queue)s, %(policy)s, %(max_attempts)s)
    ON CONFLICT (name) DO NOTHING
    RETURNING policy
), limited AS (
    INSERT INTO {schema}.rates (queue, rate, burst, tokens, at)
    SELECT %(queue)s, %(rate)s, %(burst)s, %(burst)s, 0 FROM ins
    WHERE %(rate)s::float8 IS NOT NULL
    ON CONFLICT (queue) DO NOTHING
)
SELECT policy FROM ins
UNION ALL
SELECT policy FROM {schema}.queues WHERE name = %(queue)s;

-- name: list_queues
SELECT name FROM {schema}.queues ORDER BY name;

-- name: enqueue
-- Store a batch in one statement: count it on the queue (which locks the queue
-- row, so a concurrent delete_subscription cannot leave orphans), insert the
-- rows in order and wake consumers on commit. No row returned: unknown queue.
-- A message whose (queue, id) is already stored is left as it is: a send retried
-- with the same id (its first try may have committed before the connection
-- broke) stores it once, as every backend does.
WITH q AS (
    UPDATE {schema}.queues SET sent = sent + %(n)s
    WHERE name = %(queue)s
    RETURNING name
), ins AS (
    INSERT INTO {schema}.messages
        (queue, id, body, headers, enqueued_at, available_at, due, attempts,
         dedup_key, redrives)
    SELECT q.name, u.id, u.body, u.headers::jsonb, u.enqueued_at, u.available_at,
        u.available_at, u.attempts, u.dedup_key, u.redrives
    FROM q, unnest(%(ids)b::text[], %(bodies)b::bytea[], %(headers)b::text[],
        %(enqueued)b::bigint[], %(available)b::bigint[], %(attempts)b::int[],
        %(dedup)b::text[], %(redrives)b::int[])
        WITH ORDINALITY
        AS u(id, body, headers, enqueued_at, available_at, attempts, dedup_key,
             redrives, ord)
    ORDER BY u.ord
    ON CONFLICT (queue, id) DO NOTHING
    RETURNING 1
)
SELECT pg_notify(%(channel)s, name) FROM q;

-- name: enqueue_ordered
-- As enqueue, for messages with a group or a priority. A grouped message is
-- stored blocked (between group_locks and unblock_heads, which unblocks it if
-- it heads its group).
WITH q AS (
    UPDATE {schema}.queues SET sent = sent + %(n)s
    WHERE name = %(queue)s
    RETURNING name
), u AS (
    SELECT * FROM unnest(%(ids)b::text[], %(bodies)b::bytea[], %(headers)b::text[],
        %(enqueued)b::bigint[], %(available)b::bigint[], %(attempts)b::int[],
        %(dedup)b::text[], %(redrives)b::int[], %(groups)b::text[],
        %(priorities)b::smallint[])
        WITH ORDINALITY
        AS u(id, body, headers, enqueued_at, available_at, attempts, dedup_key,
             redrives, grp, priority, ord)
), ins AS (
    INSERT INTO {schema}.messages
        (queue, id, body, headers, enqueued_at, available_at, due, attempts,
         dedup_key, redrives, grp, priority, blocked)
    SELECT q.name, u.id, u.body, u.headers::jsonb, u.enqueued_at, u.available_at,
        u.available_at, u.attempts, u.dedup_key, u.redrives, u.grp, u.priority,
        u.grp IS NOT NULL
    FROM q, u
    ORDER BY u.ord
    ON CONFLICT (queue, id) DO NOTHING
    RETURNING 1
)
SELECT pg_notify(%(channel)s, name) FROM q;

-- name: dedup_claim
-- Take a dedup key that nobody holds; a row back means it was free.
INSERT INTO {schema}.dedup (queue, key, id, expires_at)
VALUES (%(queue)s, %(key)s, %(id)s, %(expires_at)s)
ON CONFLICT (queue, key) DO NOTHING
RETURNING id;

-- name: dedup_get
-- The first message of a taken dedup key, when its window ends, and whether
-- that message is still on the queue (locks the key until commit).
SELECT d.id, d.expires_at, EXISTS (
    SELECT 1 FROM {schema}.messages AS m WHERE m.queue = d.queue AND m.id = d.id
)
FROM {schema}.dedup AS d WHERE d.queue = %(queue)s AND d.key = %(key)s
FOR UPDATE OF d;

-- name: dedup_put
UPDATE {schema}.dedup SET id = %(id)s, expires_at = %(expires_at)s
WHERE queue = %(queue)s AND key = %(key)s;

-- name: dedup_prune
-- Forget keys whose window ended and whose message is gone.
DELETE FROM {schema}.dedup AS d
WHERE d.queue = %(queue)s AND d.expires_at <= %(now)s AND NOT EXISTS (
    SELECT 1 FROM {schema}.messages AS m WHERE m.queue = d.queue AND m.id = d.id
);

-- name: claim
-- Lease up to %(limit)s visible messages, highest priority first, then earliest
-- visible, in one statement; rows another claim holds are skipped, never waited
-- for, and so are messages waiting behind the head of their group (blocked). A
-- rate-limited queue's bucket (locked until commit) is refilled and grants at
-- most its whole tokens. One row per leased message, each with the queue's
-- max_attempts, whether some lease ran out and (rate limited) when the bucket
-- next has a token; one row of NULL message columns when nothing was leased;
-- none for an unknown queue. While a lease that ran out is unresolved, nothing
-- is leased (unless %(resolved)s): the caller resolves it first, then claims
-- again.
WITH q AS (
    SELECT q.max_attempts, EXISTS (
        SELECT 1 FROM {schema}.messages AS m
        WHERE m.queue = q.name AND m.token IS NOT NULL AND m.due <= %(now)s
    ) AS expired
    FROM {schema}.queues AS q WHERE q.name = %(queue)s
), b AS (
    SELECT rate, greatest(at, %(now)s) AS at,
        least(burst, tokens + greatest(0, %(now)s - at) * rate / 1000) AS tokens
    FROM {schema}.rates WHERE queue = %(queue)s
    FOR UPDATE
), c AS (
    UPDATE {schema}.messages
    SET token = %(token)s, due = %(until)s, consumer = %(consumer)s,
        attempts = attempts + 1
    WHERE (queue, id) IN (
        SELECT queue, id FROM (
            SELECT queue, id FROM {schema}.messages
            WHERE queue = %(queue)s AND token IS NULL AND NOT blocked
                AND due <= %(now)s
                AND (%(resolved)s OR NOT (SELECT expired FROM q))
            ORDER BY priority DESC, due, seq
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        ) AS ready
        -- The bucket's whole tokens (NULL, no bucket: no limit); rows are
        -- locked only as this takes them.
        LIMIT (SELECT floor(tokens)::int FROM b)
    )
    RETURNING seq, queue, id, body, headers, enqueued_at, available_at, attempts,
        dedup_key, redrives, grp, priority
), spent AS (
    UPDATE {schema}.rates AS r
    SET tokens = b.tokens - (SELECT count(*) FROM c), at = b.at
    FROM b WHERE r.queue = %(queue)s
    RETURNING CASE WHEN r.tokens >= 1 THEN r.at
        ELSE r.at + ceil((1 - r.tokens) * 1000 / r.rate)::bigint END AS permit
)
SELECT q.max_attempts, q.expired, (SELECT permit FROM spent), c.*
FROM q LEFT JOIN c ON true;

-- name: expired_groups
-- The groups of the leases that ran out: locked (group_locks) before the rows
-- are, as every other statement on groups does, so that resolving them never
-- waits for a group while holding rows that its holder waits for.
SELECT DISTINCT grp FROM {schema}.messages
WHERE queue = %(queue)s AND token IS NOT NULL AND due <= %(now)s
    AND grp IS NOT NULL;

-- name: expired
-- Leases that ran out, locked for resolution (rows others hold are skipped).
SELECT id, attempts, consumer, grp FROM {schema}.messages
WHERE queue = %(queue)s AND token IS NOT NULL AND due <= %(now)s
ORDER BY seq
FOR UPDATE SKIP LOCKED;

-- name: requeue_expired
-- Expired leases with attempts left: visible again, each with its history entry.
WITH u AS (
    SELECT * FROM unnest(%(ids)b::text[], %(entries)b::text[]) AS u(id, entry)
), done AS (
    UPDATE {schema}.messages AS m
    SET token = NULL, due = %(now)s,
        history = m.history || jsonb_build_array(u.entry::jsonb)
    FROM u
    WHERE m.queue = %(queue)s AND m.id = u.id
    RETURNING m.queue
)
SELECT pg_notify(%(channel)s, %(queue)s) WHERE EXISTS (SELECT 1 FROM done);

-- name: bury
-- Move messages to the dead letters, each with its final history entry (whose
-- error becomes the dead letter's), and count them; only leases with this
-- token (NULL: any state) move. Returns the ids moved, with their groups.
WITH u AS (
    SELECT * FROM unnest(%(ids)b::text[], %(entries)b::text[]) AS u(id, entry)
), gone AS (
    DELETE FROM {schema}.messages AS m
    USING u
    WHERE m.queue = %(queue)s AND m.id = u.id
        AND (%(token)s::text IS NULL OR m.token = %(token)s::text)
    RETURNING m.*, u.entry::jsonb AS entry
), ins AS (
    INSERT INTO {schema}.dead
        (queue, id, body, headers, enqueued_at, available_at, attempts, dedup_key,
         redrives, reason, error, history, dead_at, grp, priority)
    SELECT queue, id, body, headers, enqueued_at, available_at, attempts, dedup_key,
        redrives, %(reason)s, nullif(entry -> 'error', 'null'::jsonb),
        history || jsonb_build_array(entry), %(now)s, grp, priority
    FROM gone ORDER BY seq
    ON CONFLICT (queue, id) DO UPDATE
    SET body = excluded.body, headers = excluded.headers,
        enqueued_at = excluded.enqueued_at, available_at = excluded.available_at,
        attempts = excluded.attempts, dedup_key = excluded.dedup_key,
        redrives = excluded.redrives, reason = excluded.reason,
        error = excluded.error, history = excluded.history,
        dead_at = excluded.dead_at, grp = excluded.grp, priority = excluded.priority
), counted AS (
    UPDATE {schema}.queues
    SET dead_lettered = dead_lettered + (SELECT count(*) FROM gone)
    WHERE name = %(queue)s AND EXISTS (SELECT 1 FROM gone)
)
SELECT id, grp FROM gone;

-- name: group_locks
-- Lock the groups (queue, group) that a send, ack, dead letter or redrive
-- changes, until commit, in one order (so that two of them never wait for each
-- other): run first in their transaction, so that their statements see every
-- change made to those groups before. Each of their queues is locked shared
-- first (a one-key lock: another space than the groups' two-key ones), which a
-- purge takes exclusively: a purge never runs between a send's unblock_heads
-- and its commit (it would delete the head that send saw, leaving the new
-- message blocked behind nothing).
SELECT count(pg_advisory_xact_lock_shared(hashtextextended(k.queue, 0)))
FROM (SELECT DISTINCT queue FROM unnest(%(queues)b::text[]) AS u(queue)
    ORDER BY queue) AS k
UNION ALL
SELECT count(pg_advisory_xact_lock(hashtext(k.queue), hashtext(k.grp)))
FROM (
    SELECT DISTINCT queue, grp
    FROM unnest(%(queues)b::text[], %(groups)b::text[]) AS u(queue, grp)
    ORDER BY queue, grp
) AS k;

-- name: unblock_heads
-- Run last in the transaction of group_locks: the first message of each of
-- those groups, in send order, is claimable (not blocked) whatever its state,
-- and wakes consumers; the others stay blocked. A grouped message is stored
-- blocked, so this makes the head of every group its statement changed. The
-- heads are updated by row address (the group locks keep them where they are).
WITH heads AS (
    SELECT h.ctid
    FROM (
        SELECT DISTINCT queue, grp
        FROM unnest(%(queues)b::text[], %(groups)b::text[]) AS u(queue, grp)
    ) AS k,
    LATERAL (
        SELECT n.ctid, n.blocked FROM {schema}.messages AS n
        WHERE n.queue = k.queue AND n.grp = k.grp
        ORDER BY n.seq LIMIT 1
    ) AS h
    WHERE h.blocked
), done AS (
    UPDATE {schema}.messages AS m SET blocked = false
    WHERE m.ctid = ANY(ARRAY(SELECT ctid FROM heads))
    RETURNING m.queue
)
SELECT pg_notify(%(channel)s, d.queue) FROM (SELECT DISTINCT queue FROM done) AS d;

-- name: ack
-- Delete leased messages (any queues) whose lease has the receipt's token, count
-- them, and unblock the next message of each group that lost its head (a leased
-- message of a group is its head): found from just after that head in the group
-- index, so the entries of the group's earlier, deleted messages are not walked
-- (see unblock_heads for the other writes). Run after group_locks for a batch
-- that knows its groups. Returns the (queue, id, group) deleted; the fourth
-- column wakes the consumers of the queues a message was unblocked on.
WITH gone AS (
    DELETE FROM {schema}.messages AS m
    USING unnest(%(queues)b::text[], %(ids)b::text[], %(tokens)b::text[])
        AS k(queue, id, token)
    WHERE m.queue = k.queue AND m.id = k.id AND m.token = k.token
    RETURNING m.queue, m.id, m.grp, m.seq
), counted AS (
    UPDATE {schema}.queues AS q SET acked = q.acked + c.n
    FROM (SELECT queue, count(*) AS n FROM gone GROUP BY queue) AS c
    WHERE q.name = c.queue
), heads AS (
    SELECT h.ctid
    FROM gone AS g,
    LATERAL (
        SELECT n.ctid, n.blocked FROM {schema}.messages AS n
        WHERE n.queue = g.queue AND n.grp = g.grp AND n.seq > g.seq
        ORDER BY n.seq LIMIT 1
    ) AS h
    WHERE g.grp IS NOT NULL AND h.blocked
), freed AS (
    UPDATE {schema}.messages AS m SET blocked = false
    WHERE m.ctid = ANY(ARRAY(SELECT ctid FROM heads))
    RETURNING m.queue
)
SELECT queue, id, grp, (
    SELECT count(pg_notify(%(channel)s, d.queue))
    FROM (SELECT DISTINCT queue FROM freed) AS d
) FROM gone;

-- name: retry
-- Visible again after the delay, with a history entry; counted; wakes
-- consumers. A row back means the lease was held.
WITH done AS (
    UPDATE {schema}.messages
    SET token = NULL, due = %(due)s,
        history = history || jsonb_build_array(%(entry)s::jsonb)
    WHERE queue = %(queue)s AND id = %(id)s AND token = %(token)s
    RETURNING queue
), counted AS (
    UPDATE {schema}.queues SET retried = retried + 1
    WHERE name = %(queue)s AND EXISTS (SELECT 1 FROM done)
)
SELECT pg_notify(%(channel)s, queue) FROM done;

-- name: release
-- Give leased messages back at once, the attempt uncounted; lost leases are
-- skipped. Wakes the consumers of each queue.
WITH done AS (
    UPDATE {schema}.messages AS m
    SET token = NULL, due = %(now)s, attempts = greatest(0, m.attempts - 1)
    FROM unnest(%(queues)b::text[], %(ids)b::text[], %(tokens)b::text[])
        AS k(queue, id, token)
    WHERE m.queue = k.queue AND m.id = k.id AND m.token = k.token
    RETURNING m.queue
)
SELECT pg_notify(%(channel)s, queue) FROM (SELECT DISTINCT queue FROM done) AS d;

-- name: extend
UPDATE {schema}.messages SET due = %(due)s
WHERE queue = %(queue)s AND id = %(id)s AND token = %(token)s
RETURNING due;

-- name: queue_exists
SELECT 1 FROM {schema}.queues WHERE name = %(queue)s;

-- name: next_due
-- When the queue next needs a consumer: the earliest visibility or lease end
-- (messages behind the head of their group wait for it, not for a time).
SELECT min(due) FROM {schema}.messages WHERE queue = %(queue)s AND NOT blocked;

-- name: peek
SELECT seq, queue, id, body, headers, enqueued_at, available_at, attempts,
    dedup_key, redrives, grp, priority
FROM {schema}.messages WHERE queue = %(queue)s ORDER BY seq LIMIT %(limit)s;

-- name: expired_queues
-- Which of these queues exist (with max_attempts) and have leases that ran out.
SELECT q.name, q.max_attempts, EXISTS (
    SELECT 1 FROM {schema}.messages AS m
    WHERE m.queue = q.name AND m.token IS NOT NULL AND m.due <= %(now)s
)
FROM {schema}.queues AS q WHERE q.name = ANY(%(queues)b::text[]);

-- name: depths
-- ready, delayed, in_flight, dead and the oldest enqueued_at of each queue.
SELECT n.name,
    (SELECT count(*) FROM {schema}.messages
     WHERE queue = n.name AND token IS NULL AND due <= %(now)s),
    (SELECT count(*) FROM {schema}.messages
     WHERE queue = n.name AND token IS NULL AND due > %(now)s),
    (SELECT count(*) FROM {schema}.messages
     WHERE queue = n.name AND token IS NOT NULL),
    (SELECT count(*) FROM {schema}.dead WHERE queue = n.name),
    (SELECT min(enqueued_at) FROM {schema}.messages WHERE queue = n.name)
FROM unnest(%(queues)b::text[]) WITH ORDINALITY AS n(name, ord)
ORDER BY n.ord;

-- name: purge_lock
-- Wait for the sends and redrives into groups of the queue under way, and keep
-- new ones out until commit (see group_locks): the purge that follows, in the
-- same transaction, sees them all.
SELECT pg_advisory_xact_lock(hashtextextended(%(queue)s, 0));

-- name: purge_messages
DELETE FROM {schema}.messages WHERE queue = %(queue)s;

-- name: purge_dead
DELETE FROM {schema}.dead WHERE queue = %(queue)s;

-- name: purge_dedup
DELETE FROM {schema}.dedup WHERE queue = %(queue)s;

-- name: delete_queue
DELETE FROM {schema}.queues WHERE name = %(queue)s;

-- name: counters
SELECT name, sent, acked, retried, dead_lettered, redriven
FROM {schema}.queues WHERE name = ANY(%(queues)b::text[]);

-- name: dead_letters
-- Dead letters of a queue in order of death, optionally of one reason and
-- among some ids (NULL: all); %(limit)s NULL means no limit.
SELECT seq, queue, id, body, headers, enqueued_at, available_at, attempts,
    dedup_key, redrives, reason, error, history, dead_at, grp, priority
FROM {schema}.dead
WHERE queue = %(queue)s
    AND (%(reason)s::text IS NULL OR reason = %(reason)s::text)
    AND (%(ids)b::text[] IS NULL OR id = ANY(%(ids)b::text[]))
ORDER BY seq
LIMIT %(limit)s;

-- name: redrive_pick
-- The dead letters a redrive may move, in order of death, locked until commit,
-- with their groups.
SELECT id, grp FROM {schema}.dead
WHERE queue = %(queue)s
    AND (%(ids)b::text[] IS NULL OR id = ANY(%(ids)b::text[]))
ORDER BY seq
LIMIT %(limit)s
FOR UPDATE;

-- name: redrive_move
-- Put dead letters back on a queue: same id, body, headers, group and priority,
-- attempts reset, one more redrive, visible now (at the end of their group,
-- blocked: see unblock_heads), a fresh history; counted on the source queue.
WITH gone AS (
    DELETE FROM {schema}.dead
    WHERE queue = %(queue)s AND id = ANY(%(ids)b::text[])
    RETURNING *
), ins AS (
    INSERT INTO {schema}.messages
        (queue, id, body, headers, enqueued_at, available_at, due, attempts,
         dedup_key, redrives, grp, priority, blocked)
    SELECT %(to)s, id, body, headers, enqueued_at, %(now)s, %(now)s, 0, dedup_key,
        redrives + 1, grp, priority, grp IS NOT NULL
    FROM gone ORDER BY array_position(%(ids)b::text[], id)
    ON CONFLICT (queue, id) DO UPDATE
    SET body = excluded.body, headers = excluded.headers,
        enqueued_at = excluded.enqueued_at, available_at = excluded.available_at,
        due = excluded.due, attempts = 0, dedup_key = excluded.dedup_key,
        redrives = excluded.redrives, token = NULL, consumer = '', history = '[]',
        grp = excluded.grp, priority = excluded.priority, blocked = excluded.blocked
), counted AS (
    UPDATE {schema}.queues SET redriven = redriven + (SELECT count(*) FROM gone)
    WHERE name = %(queue)s
)
SELECT pg_notify(%(channel)s, %(to)s);

-- name: put_subscription
-- Store a subscription unless one of that name exists; the stored one.
WITH ins AS (
    INSERT INTO {schema}.subscriptions (topic, name, data)
    VALUES (%(topic)s, %(name)s, %(data)s)
    ON CONFLICT (topic, name) DO NOTHING
    RETURNING data
), touched AS (
    INSERT INTO {schema}.topics (topic) VALUES (%(topic)s)
    ON CONFLICT (topic) DO NOTHING
)
SELECT data FROM ins
UNION ALL
SELECT data FROM {schema}.subscriptions WHERE topic = %(topic)s AND name = %(name)s;

-- name: list_subscriptions
SELECT data FROM {schema}.subscriptions
WHERE %(topic)s::text IS NULL OR topic = %(topic)s::text
ORDER BY topic, name;

-- name: delete_subscription
DELETE FROM {schema}.subscriptions WHERE topic = %(topic)s AND name = %(name)s
RETURNING data;

-- name: record_publish
INSERT INTO {schema}.topics AS t (topic, published, unrouted)
VALUES (%(topic)s, 1, %(unrouted)s)
ON CONFLICT (topic) DO UPDATE
SET published = t.published + 1, unrouted = t.unrouted + excluded.unrouted;

-- name: fan_out
-- One publish in one statement: count a copy on each subscription queue that
-- still exists (locking its row, so a concurrent delete cannot leave orphans),
-- store the copies there, count the publish on the topic, wake consumers.
-- Returns one row per queue that got its copy.
WITH live AS (
    UPDATE {schema}.queues AS q SET sent = q.sent + c.n
    FROM (
        SELECT queue, count(*) AS n FROM unnest(%(queues)b::text[]) AS u(queue)
        GROUP BY queue
    ) AS c
    WHERE q.name = c.queue
    RETURNING q.name
), ins AS (
    INSERT INTO {schema}.messages
        (queue, id, body, headers, enqueued_at, available_at, due, attempts,
         dedup_key, redrives)
    SELECT u.queue, u.id, u.body, u.headers::jsonb, u.enqueued_at, u.available_at,
        u.available_at, u.attempts, u.dedup_key, u.redrives
    FROM unnest(%(queues)b::text[], %(ids)b::text[], %(bodies)b::bytea[],
        %(headers)b::text[], %(enqueued)b::bigint[], %(available)b::bigint[],
        %(attempts)b::int[], %(dedup)b::text[], %(redrives)b::int[])
        WITH ORDINALITY
        AS u(queue, id, body, headers, enqueued_at, available_at, attempts,
             dedup_key, redrives, ord)
    WHERE u.queue IN (SELECT name FROM live)
    ORDER BY u.ord
    ON CONFLICT (queue, id) DO UPDATE
    SET body = excluded.body, headers = excluded.headers,
        enqueued_at = excluded.enqueued_at, available_at = excluded.available_at,
        due = excluded.due, attempts = excluded.attempts,
        dedup_key = excluded.dedup_key, redrives = excluded.redrives,
        token = NULL, consumer = '', history = '[]'
    RETURNING queue
), published AS (
    INSERT INTO {schema}.topics AS t (topic, published, unrouted)
    VALUES (%(topic)s, 1, CASE WHEN EXISTS (SELECT 1 FROM live) THEN 0 ELSE 1 END)
    ON CONFLICT (topic) DO UPDATE
    SET published = t.published + 1, unrouted = t.unrouted + excluded.unrouted
)
SELECT c.n, pg_notify(%(channel)s, live.name)
FROM live JOIN (
    SELECT queue, count(*) AS n FROM unnest(%(queues)b::text[]) AS u(queue)
    GROUP BY queue
) AS c ON c.queue = live.name;

-- name: list_topics
SELECT t.topic,
    (SELECT count(*) FROM {schema}.subscriptions AS s WHERE s.topic = t.topic),
    t.published, t.unrouted
FROM {schema}.topics AS t ORDER BY t.topic;

-- name: durations_add
-- Add to cells of a queue's handler duration histogram (bucket labels, "count",
-- "sum_ms"), all in one statement.
INSERT INTO {schema}.durations AS d (queue, bucket, n)
SELECT %(queue)s, u.bucket, u.n
FROM unnest(%(buckets)b::text[], %(ns)b::bigint[]) AS u(bucket, n)
ON CONFLICT (queue, bucket) DO UPDATE SET n = d.n + excluded.n;

-- name: delete_durations
DELETE FROM {schema}.durations WHERE queue = %(queue)s;

-- name: durations_get
-- Every cell of the named queues' handler duration histograms.
SELECT queue, bucket, n FROM {schema}.durations
WHERE queue = ANY(%(queues)b::text[]);

-- name: worker_put
-- A worker process's record (JSON) until it expires (a heartbeat).
INSERT INTO {schema}.workers (id, record, expires_at)
VALUES (%(id)s, %(record)s, %(expires)s)
ON CONFLICT (id) DO UPDATE SET record = excluded.record,
    expires_at = excluded.expires_at;

-- name: worker_prune
-- Forget the workers whose heartbeats stopped.
DELETE FROM {schema}.workers WHERE expires_at <= %(now)s;

-- name: worker_list
SELECT record FROM {schema}.workers WHERE expires_at > %(now)s ORDER BY id;

-- name: worker_delete
DELETE FROM {schema}.workers WHERE id = %(id)s;

-- name: sample_put
-- The sample of one time bucket, unless it has one (the first writer wins).
INSERT INTO {schema}.samples (bucket, record, expires_at)
VALUES (%(bucket)s, %(record)s, %(expires)s)
ON CONFLICT (bucket) DO NOTHING;

-- name: sample_prune
DELETE FROM {schema}.samples WHERE expires_at <= %(now)s;

-- name: sample_list
SELECT bucket, record FROM {schema}.samples
WHERE bucket >= %(since)s AND expires_at > %(now)s ORDER BY bucket;
