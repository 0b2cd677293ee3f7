-- The application's group role. The server logs in as a member of it, never as the role that
-- owns the tables: what it may do is sql/90_privileges.sql, applied after the function files
-- (and again whenever they change). Roles belong to the whole PostgreSQL cluster, so it is made
-- only when missing; a migrating role that may not create roles needs it made first by an
-- administrator (`shopkeep-server migrate --print-grants` prints the statements).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shopkeep_app') THEN
        CREATE ROLE shopkeep_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- the migration of another database on the same cluster made it a moment ago
END $$;
