-- Least privilege for scansync: a login role that owns only its schema. Run as an
-- administrator once; scansync then migrates, syncs, backfills and reports as this role
-- (tested: tests/it/privileges.rs). It needs no CREATE on the database and no superuser.
create role scansync login password 'change-me';        -- or IAM / certificate auth
grant connect, temporary on database app to scansync;   -- temporary: the per-page staging tables
create schema scansync authorization scansync;

-- Readers (search, dashboards, agents): read-only on the canonical tables.
create role scansync_reader nologin;
grant usage on schema scansync to scansync_reader;
grant select on all tables in schema scansync to scansync_reader;
alter default privileges for role scansync in schema scansync grant select on tables to scansync_reader;
