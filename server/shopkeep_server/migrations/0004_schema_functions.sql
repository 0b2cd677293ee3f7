-- The function files of shopkeep_server/sql/ as last applied to this database, one row per file
-- with the sha256 of its text. db.migrate compares them with the shipped files: the same set
-- means nothing to do (no DDL on an ordinary start); any difference re-applies every file.
CREATE TABLE schema_functions (
    name       text PRIMARY KEY,
    checksum   text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now()
);
