-- The SQL of the sqlite:// backend, one named block per statement.
--
-- A block starts with a line "-- name: <name>" and runs to the next one; the
-- comment lines after the name say what the statement is for. Times are
-- milliseconds since the epoch. A message row is either visible from "due" on
-- (token IS NULL) or leased until "due" (token IS NOT NULL). A message of a
-- group is "blocked" (1) while an earlier message of its queue and group (lower
-- seq) is stored, whatever that one's state: only its group's head is claimable.

-- name: schema
-- Tables and indexes; every statement is idempotent (run by connect()).
CREATE TABLE IF NOT EXISTS postroom_queues (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    max_attempts INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    acked INTEGER NOT NULL DEFAULT 0,
    retried INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    redriven INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS postroom_messages (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    due INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    dedup_key TEXT,
    redrives INTEGER NOT NULL DEFAULT 0,
    token TEXT,
    consumer TEXT NOT NULL DEFAULT '',
    history TEXT NOT NULL DEFAULT '[]',
    group_key TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    blocked INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS postroom_messages_key
    ON postroom_messages (queue, id);
-- Blocked messages are left out of the claim's index: unblocking a group's next
-- message adds one entry there, among the few heads, instead of moving one
-- from among all the waiting messages (fewer pages written per commit).
CREATE INDEX IF NOT EXISTS postroom_messages_visible
    ON postroom_messages (queue, due, seq) WHERE token IS NULL AND blocked = 0;
CREATE INDEX IF NOT EXISTS postroom_messages_leased
    ON postroom_messages (queue, due) WHERE token IS NOT NULL;
CREATE INDEX IF NOT EXISTS postroom_messages_group
    ON postroom_messages (queue, group_key, seq) WHERE group_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS postroom_messages_priority
    ON postroom_messages (queue, priority DESC, due, seq)
    WHERE token IS NULL AND priority > 0 AND blocked = 0;
-- The head of a group leaving (ack, dead letter, purge, redrive over it)
-- unblocks the group's next message in the same transaction.
CREATE TRIGGER IF NOT EXISTS postroom_messages_unblock
AFTER DELETE ON postroom_messages
WHEN old.group_key IS NOT NULL AND old.blocked = 0
BEGIN
    UPDATE postroom_messages SET blocked = 0
    WHERE seq = (
        SELECT min(seq) FROM postroom_messages
        WHERE queue = old.queue AND group_key = old.group_key); END;
CREATE TABLE IF NOT EXISTS postroom_dead (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    dedup_key TEXT,
    redrives INTEGER NOT NULL,
    reason TEXT NOT NULL,
    error TEXT,
    history TEXT NOT NULL,
    dead_at INTEGER NOT NULL,
    group_key TEXT,
    priority INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS postroom_dead_key ON postroom_dead (queue, id);
CREATE INDEX IF NOT EXISTS postroom_dead_queue ON postroom_dead (queue);
CREATE TABLE IF NOT EXISTS postroom_dedup (
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS postroom_subscriptions (
    topic TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (topic, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS postroom_topics (
    topic TEXT PRIMARY KEY,
    published INTEGER NOT NULL DEFAULT 0,
    unrouted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS postroom_durations (
    queue TEXT NOT NULL,
    bucket TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (queue, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS postroom_workers (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS postroom_samples (
    bucket INTEGER PRIMARY KEY,
    record TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS postroom_buckets (
    queue TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    at_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- name: migrate_5
-- Schema 5 (message groups and priorities): the columns a file of schema 1 to 4
-- lacks, added before "schema" creates the indexes that use them.
ALTER TABLE postroom_messages ADD COLUMN group_key TEXT;
ALTER TABLE postroom_messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE postroom_dead ADD COLUMN group_key TEXT;
ALTER TABLE postroom_dead ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;

-- name: migrate_6
-- Schema 6 (blocked group members): the column, set on the stored messages
-- behind their group's head, and the indexes "schema" then makes anew with it.
ALTER TABLE postroom_messages ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
UPDATE postroom_messages SET blocked = 1
WHERE group_key IS NOT NULL AND EXISTS (
    SELECT 1 FROM postroom_messages AS e
    WHERE e.queue = postroom_messages.queue
        AND e.group_key = postroom_messages.group_key
        AND e.seq < postroom_messages.seq);
DROP INDEX IF EXISTS postroom_messages_visible;
DROP INDEX IF EXISTS postroom_messages_priority;

-- name: get_queue
-- The stored policy (JSON) and max_attempts of one queue.
SELECT policy, max_attempts FROM postroom_queues WHERE name = ?;

-- name: insert_queue
-- Create a queue unless it exists (send to an unknown name).
INSERT OR IGNORE INTO postroom_queues (name, policy, max_attempts) VALUES (?, ?, ?);

-- name: upsert_queue
-- Create a queue or replace its policy, keeping its counters.
INSERT INTO postroom_queues (name, policy, max_attempts) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE
SET policy = excluded.policy, max_attempts = excluded.max_attempts;

-- name: list_queues
SELECT name FROM postroom_queues ORDER BY name;

-- name: delete_queue
DELETE FROM postroom_queues WHERE name = ?;

-- name: insert_message
-- Store one message, visible from its available_at; blocked when its group has
-- a message stored already (a new row's seq is the highest). A message whose
-- (queue, id) is already stored is left as it is: a send retried with the same
-- id (its first try may have committed) stores it once, as every backend does.
INSERT OR IGNORE INTO postroom_messages
    (queue, id, body, headers, enqueued_at, available_at, due, attempts,
     dedup_key, redrives, group_key, priority, blocked)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
    ?11 IS NOT NULL AND EXISTS (
        SELECT 1 FROM postroom_messages WHERE queue = ?1 AND group_key = ?11));

-- name: dedup_get
-- The first message of a dedup key, when that key's window ends, and whether
-- that message is still on the queue.
SELECT d.id, d.expires_at, EXISTS (
    SELECT 1 FROM postroom_messages AS m WHERE m.queue = d.queue AND m.id = d.id
)
FROM postroom_dedup AS d WHERE d.queue = ? AND d.key = ?;

-- name: dedup_put
INSERT OR REPLACE INTO postroom_dedup (queue, key, id, expires_at) VALUES (?, ?, ?, ?);

-- name: dedup_prune
-- Forget keys whose window ended and whose message is gone.
DELETE FROM postroom_dedup
WHERE queue = ? AND expires_at <= ? AND NOT EXISTS (
    SELECT 1 FROM postroom_messages AS m
    WHERE m.queue = postroom_dedup.queue AND m.id = postroom_dedup.id
);

-- name: count_sent
UPDATE postroom_queues SET sent = sent + ? WHERE name = ?;

-- name: count_acked
UPDATE postroom_queues SET acked = acked + ? WHERE name = ?;

-- name: count_retried
UPDATE postroom_queues SET retried = retried + ? WHERE name = ?;

-- name: count_dead_lettered
UPDATE postroom_queues SET dead_lettered = dead_lettered + ? WHERE name = ?;

-- name: count_redriven
UPDATE postroom_queues SET redriven = redriven + ? WHERE name = ?;

-- name: claimable
-- Whether a claim has anything to do: a visible message or an expired lease.
-- Read outside any write transaction, so an idle poll never takes the lock.
SELECT EXISTS (
    SELECT 1 FROM postroom_messages
    WHERE queue = :queue AND blocked = 0 AND token IS NULL AND due <= :now
) OR EXISTS (
    SELECT 1 FROM postroom_messages
    WHERE queue = :queue AND token IS NOT NULL AND due <= :now
);

-- name: claim
-- Lease up to :limit visible messages in one statement: highest priority first,
-- then earliest visible. A message of a group is claimable only when it is not
-- blocked (it is its group's head), so a claim never walks past the waiting
-- members of a group. The prioritised messages (priority > 0) have their own
-- small index, so a queue without them claims exactly as it did before
-- priorities.
UPDATE postroom_messages
SET token = :token, due = :until, consumer = :consumer, attempts = attempts + 1
WHERE seq IN (
    SELECT seq FROM (
        SELECT * FROM (
            SELECT seq, priority, due FROM postroom_messages AS m
            WHERE queue = :queue AND token IS NULL AND priority > 0
                AND blocked = 0 AND due <= :now
            ORDER BY priority DESC, due, seq
            LIMIT :limit)
        UNION ALL
        SELECT * FROM (
            SELECT seq, priority, due FROM postroom_messages AS m
            WHERE queue = :queue AND blocked = 0 AND token IS NULL
                AND due <= :now AND priority = 0
            ORDER BY due, seq
            LIMIT :limit)
    )
    ORDER BY priority DESC, due, seq
    LIMIT :limit
)
RETURNING seq, queue, id, body, headers, enqueued_at, available_at, attempts,
    dedup_key, redrives, group_key, priority;

-- name: bucket_get
-- The rate limit's bucket of a queue: permits left at a time.
SELECT tokens, at_ms FROM postroom_buckets WHERE queue = ?;

-- name: bucket_put
INSERT INTO postroom_buckets (queue, tokens, at_ms) VALUES (?, ?, ?)
ON CONFLICT (queue) DO UPDATE SET tokens = excluded.tokens, at_ms = excluded.at_ms;

-- name: bucket_delete
DELETE FROM postroom_buckets WHERE queue = ?;

-- name: expired
-- Leases that ran out: resolved lazily by claim, stats and dead_letters.
SELECT seq, attempts, consumer FROM postroom_messages
WHERE queue = ? AND token IS NOT NULL AND due <= ?;

-- name: requeue_expired
-- An expired lease with attempts left: visible again, with a history entry.
UPDATE postroom_messages
SET token = NULL, due = ?, history = json_insert(history, '$[#]', json(?))
WHERE seq = ?;

-- name: bury
-- Copy a message into the dead letters with its final history entry.
INSERT OR REPLACE INTO postroom_dead
    (queue, id, body, headers, enqueued_at, available_at, attempts, dedup_key,
     redrives, reason, error, history, dead_at, group_key, priority)
SELECT queue, id, body, headers, enqueued_at, available_at, attempts, dedup_key,
    redrives, :reason, :error, json_insert(history, '$[#]', json(:entry)), :now,
    group_key, priority
FROM postroom_messages WHERE seq = :seq;

-- name: delete_seq
DELETE FROM postroom_messages WHERE seq = ?;

-- name: held
-- The row of a message whose lease has this token (else the lease was lost).
SELECT seq FROM postroom_messages WHERE queue = ? AND id = ? AND token = ?;

-- name: ack
DELETE FROM postroom_messages WHERE queue = ? AND id = ? AND token = ?;

-- name: ack_many
DELETE FROM postroom_messages
WHERE seq IN (
    SELECT m.seq FROM json_each(:keys) AS k
    CROSS JOIN postroom_messages AS m
        ON m.queue = :queue AND m.id = json_extract(k.value, '$[0]')
        AND m.token = json_extract(k.value, '$[1]'));

-- name: retry
UPDATE postroom_messages
SET token = NULL, due = ?, history = json_insert(history, '$[#]', json(?))
WHERE queue = ? AND id = ? AND token = ?;

-- name: release
-- Give a leased message back at once; the attempt does not count.
UPDATE postroom_messages
SET token = NULL, due = ?, attempts = max(0, attempts - 1)
WHERE queue = ? AND id = ? AND token = ?;

-- name: extend
UPDATE postroom_messages SET due = ? WHERE queue = ? AND id = ? AND token = ?;

-- name: next_due
-- When the queue next needs a consumer: the earliest visibility (of a message
-- not blocked behind an earlier one of its group) or lease end.
SELECT
    (SELECT min(due) FROM postroom_messages
     WHERE queue = :queue AND blocked = 0 AND token IS NULL),
    (SELECT min(due) FROM postroom_messages
     WHERE queue = :queue AND token IS NOT NULL);

-- name: peek
SELECT seq, queue, id, body, headers, enqueued_at, available_at, attempts,
    dedup_key, redrives, group_key, priority
FROM postroom_messages WHERE queue = ? ORDER BY seq LIMIT ?;

-- name: depths
-- Blocked members of groups count as ready or delayed by their own due time
-- (found through the group index: they are outside the claim's).
SELECT
    (SELECT count(*) FROM postroom_messages
     WHERE queue = :queue AND token IS NULL AND blocked = 0 AND due <= :now)
    + (SELECT count(*) FROM postroom_messages
     WHERE queue = :queue AND group_key IS NOT NULL AND blocked = 1
        AND due <= :now),
    (SELECT count(*) FROM postroom_messages
     WHERE queue = :queue AND token IS NULL AND blocked = 0 AND due > :now)
    + (SELECT count(*) FROM postroom_messages
     WHERE queue = :queue AND group_key IS NOT NULL AND blocked = 1
        AND due > :now),
    (SELECT count(*) FROM postroom_messages
     WHERE queue = :queue AND token IS NOT NULL),
    (SELECT count(*) FROM postroom_dead WHERE queue = :queue),
    (SELECT min(enqueued_at) FROM postroom_messages WHERE queue = :queue);

-- name: purge_messages
DELETE FROM postroom_messages WHERE queue = ?;

-- name: purge_dead
DELETE FROM postroom_dead WHERE queue = ?;

-- name: purge_dedup
DELETE FROM postroom_dedup WHERE queue = ?;

-- name: counters
SELECT sent, acked, retried, dead_lettered, redriven
FROM postroom_queues WHERE name = ?;

-- name: dead_letters
-- Dead letters of a queue in order of death, optionally of one reason and
-- among some ids (a JSON array, or NULL for all).
SELECT seq, queue, id, body, headers, enqueued_at, available_at, attempts,
    dedup_key, redrives, reason, error, history, dead_at, group_key, priority
FROM postroom_dead
WHERE queue = :queue
    AND (:reason IS NULL OR reason = :reason)
    AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
ORDER BY seq
LIMIT :limit;

-- name: redrive_clear
-- Delete the message a redrive replaces (same queue and id), so that the
-- unblocking trigger sees it go (a REPLACE would delete it without triggers).
DELETE FROM postroom_messages
WHERE queue = :to AND id = (SELECT id FROM postroom_dead WHERE seq = :seq);

-- name: redrive_insert
-- Put a dead letter back on a queue: same id, body and headers, attempts reset,
-- one more redrive, visible now (at the end of its group), a fresh history.
INSERT OR REPLACE INTO postroom_messages
    (queue, id, body, headers, enqueued_at, available_at, due, attempts,
     dedup_key, redrives, group_key, priority, blocked)
SELECT :to, d.id, d.body, d.headers, d.enqueued_at, :now, :now, 0, d.dedup_key,
    d.redrives + 1, d.group_key, d.priority,
    d.group_key IS NOT NULL AND EXISTS (
        SELECT 1 FROM postroom_messages AS m
        WHERE m.queue = :to AND m.group_key = d.group_key)
FROM postroom_dead AS d WHERE d.seq = :seq;

-- name: delete_dead_seq
DELETE FROM postroom_dead WHERE seq = ?;

-- name: put_subscription
INSERT OR IGNORE INTO postroom_subscriptions (topic, name, data) VALUES (?, ?, ?);

-- name: get_subscription
SELECT data FROM postroom_subscriptions WHERE topic = ? AND name = ?;

-- name: list_subscriptions
SELECT data FROM postroom_subscriptions
WHERE :topic IS NULL OR topic = :topic
ORDER BY topic, name;

-- name: delete_subscription
DELETE FROM postroom_subscriptions WHERE topic = ? AND name = ?;

-- name: touch_topic
INSERT OR IGNORE INTO postroom_topics (topic) VALUES (?);

-- name: record_publish
INSERT INTO postroom_topics (topic, published, unrouted) VALUES (:topic, 1, :unrouted)
ON CONFLICT (topic) DO UPDATE
SET published = published + 1, unrouted = unrouted + :unrouted;

-- name: list_topics
SELECT t.topic,
    (SELECT count(*) FROM postroom_subscriptions AS s WHERE s.topic = t.topic),
    t.published, t.unrouted
FROM postroom_topics AS t ORDER BY t.topic;

-- name: durations_add
-- Add to one cell of a queue's handler duration histogram (a bucket's label,
-- "count" or "sum_ms").
INSERT INTO postroom_durations (queue, bucket, n) VALUES (?, ?, ?)
ON CONFLICT (queue, bucket) DO UPDATE SET n = n + excluded.n;

-- name: delete_durations
DELETE FROM postroom_durations WHERE queue = ?;

-- name: durations_get
-- Every cell of one queue's handler duration histogram.
SELECT bucket, n FROM postroom_durations WHERE queue = ?;

-- name: worker_put
-- A worker process's record (JSON) until it expires (a heartbeat).
INSERT INTO postroom_workers (id, record, expires_at) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET record = excluded.record,
    expires_at = excluded.expires_at;

-- name: worker_prune
-- Forget the workers whose heartbeats stopped.
DELETE FROM postroom_workers WHERE expires_at <= ?;

-- name: worker_list
SELECT record FROM postroom_workers WHERE expires_at > ? ORDER BY id;

-- name: worker_delete
DELETE FROM postroom_workers WHERE id = ?;

-- name: sample_put
-- The sample of one time bucket, unless it has one (the first writer wins).
INSERT OR IGNORE INTO postroom_samples (bucket, record, expires_at) VALUES (?, ?, ?);

-- name: sample_prune
DELETE FROM postroom_samples WHERE expires_at <= ?;

-- name: sample_list
SELECT bucket, record FROM postroom_samples WHERE bucket >= ? AND expires_at > ?
ORDER BY bucket;
