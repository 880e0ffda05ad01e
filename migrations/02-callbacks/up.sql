-- graphtape schema 2: the callback direction.

-- Where graphtape sent the request (upstream for API calls, the bot for callbacks),
-- query redacted; NULL when it was refused.
ALTER TABLE exchanges ADD COLUMN target TEXT;
-- The request body as forwarded, when graphtape changed it (callbackUri rewriting);
-- NULL when it was forwarded exactly as received.
ALTER TABLE exchanges ADD COLUMN forwarded_body BLOB;

-- One row per notification inside a callback POST's `value` array, for queries.
-- The exchange's raw body stays the truth.
CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY,
    exchange_id      INTEGER NOT NULL REFERENCES exchanges(id) ON DELETE CASCADE,
    session_id       INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    position         INTEGER NOT NULL,
    change_type      TEXT,
    resource         TEXT,
    resource_url     TEXT,
    odata_type       TEXT,
    call_id          TEXT,
    call_id_raw      TEXT,
    operation_id     TEXT,
    operation_id_raw TEXT,
    state            TEXT,
    status           TEXT,
    UNIQUE (exchange_id, position)
) STRICT;

CREATE INDEX notifications_call ON notifications (session_id, call_id);

-- callbackUri rewriting: the path graphtape minted on its callback listener and the
-- URL the bot originally gave. Kept across sessions and restarts.
CREATE TABLE callback_routes (
    token          TEXT PRIMARY KEY,
    target_url     TEXT NOT NULL,
    created_unix_us INTEGER NOT NULL
) STRICT;
