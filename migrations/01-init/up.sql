-- graphtape schema 1: sessions, exchanges, and the per-database redaction key.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    -- wall clock at session start, microseconds since the Unix epoch
    started_unix_us INTEGER NOT NULL,
    -- monotonic offset of the session end; NULL while recording or after a crash
    ended_us        INTEGER,
    -- the recording configuration as JSON, without secrets
    config          TEXT NOT NULL,
    -- exchanges that passed through but could not be stored
    unrecorded      INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE exchanges (
    id                   INTEGER PRIMARY KEY,
    session_id           INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    -- one global order for all events of a session, taken at arrival
    seq                  INTEGER NOT NULL,
    direction            TEXT NOT NULL CHECK (direction IN ('api', 'callback')),
    wall_start_unix_us   INTEGER NOT NULL,
    request_start_us     INTEGER NOT NULL,
    request_end_us       INTEGER,
    response_start_us    INTEGER,
    response_end_us      INTEGER,
    method               TEXT NOT NULL,
    path                 TEXT NOT NULL,
    query                TEXT,
    http_version         TEXT NOT NULL,
    -- JSON array of [name, value] (value as text, or {"base64": ...})
    request_headers      TEXT NOT NULL,
    request_body         BLOB NOT NULL,
    request_body_len     INTEGER NOT NULL,
    request_body_sha256  TEXT NOT NULL,
    request_body_truncated INTEGER NOT NULL,
    status               INTEGER,
    response_headers     TEXT,
    response_body        BLOB,
    response_body_len    INTEGER,
    response_body_sha256 TEXT,
    response_body_truncated INTEGER,
    error                TEXT,
    -- derived for lookup (see graph.rs); the raw columns keep the id as seen
    call_id              TEXT,
    call_id_raw          TEXT,
    operation_id         TEXT,
    operation_id_raw     TEXT,
    UNIQUE (session_id, seq)
) STRICT;

CREATE INDEX exchanges_call ON exchanges (session_id, call_id);
CREATE INDEX exchanges_operation ON exchanges (session_id, operation_id);
