-- graphtape schema 3: derive only what is read.

-- No query looks exchanges up by operation id (the column stays, for exports and ad-hoc
-- SQL); keeping the index cost every insert a B-tree update.
DROP INDEX IF EXISTS exchanges_operation;
