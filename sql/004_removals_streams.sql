-- Version 4: removals (an item deleted from the table: an incremental export's delete, a
-- stream's REMOVE) and the stream follower.

-- When the source removed the item whose version the row's tombstone covers (NULL when the
-- tombstone is a record's own `deleted` flag). A removal is a tombstone versioned just after
-- the version it removed, so a newer scan of the post is never covered by it.
alter table content add column if not exists removed_at timestamptz;

alter table sync_runs
    -- Removals read, the TTL expiries left out of them (--ttl-removals ignore), and the rows
    -- they tombstoned; the rest removed an older scan event of a post (nothing changes).
    add column if not exists removals bigint not null default 0,
    add column if not exists ttl_removals_ignored bigint not null default 0,
    add column if not exists removals_applied bigint not null default 0;
