-- graphtape schema 3: derive only what is read.

-- No query looks exchanges up by operation id (the column stays, for exports and ad-hoc
-- SQL); keeping the index cost every insert a B-tree update.
DROP INDEX IF EXISTS exchanges_operation;

-- The pid of the `record` (or `replay`) process writing the session, so `sessions`
-- can tell a session still being recorded from one a crash interrupted.
ALTER TABLE sessions ADD COLUMN writer_pid INTEGER;
