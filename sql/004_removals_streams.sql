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
    add column if not exists removals_applied bigint not null default 0,
    -- Content rows an index-path sync changed while a follower of the schema was alive
    -- (NULL: none was): a steady count means the follower misses writes.
    add column if not exists missed_by_follower bigint,
    -- The table a follower's run (and its heals') follows: its dead runs are found by it.
    add column if not exists target text;

-- The stream follower (`scansync follow`): per followed table, the stream it reads; per
-- shard, where it stands, its position written in the same transaction as the page it
-- covers; and the gaps it found (time ranges the stream can no longer give), each healed
-- by an index-path sync of exactly that range.
create table if not exists streams (
    table_name text collate "C" primary key,
    stream_arn text collate "C" not null,
    view_type text not null,
    started_at timestamptz not null default now(),
    -- From when the stream covers the table: its creation, or the oldest record it still
    -- had when the follower first read it (records live 24 hours).
    covers_from timestamptz,
    heartbeat_at timestamptz,
    -- The most behind open shard: now minus its last applied record's time (0 when every
    -- shard is caught up).
    lag_seconds double precision,
    open_shards int not null default 0,
    records bigint not null default 0
);

create table if not exists stream_shards (
    stream_arn text collate "C" not null,
    shard_id text collate "C" not null,
    parent_shard_id text collate "C",
    state text not null default 'open' check (state in ('open', 'finished', 'lost')),
    -- The last sequence number applied (decimal digits), NULL before the first page.
    position text,
    last_record_at timestamptz,
    records bigint not null default 0,
    discovered_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (stream_arn, shard_id)
);

create table if not exists stream_gaps (
    id bigint generated always as identity primary key,
    table_name text collate "C" not null,
    stream_arn text collate "C",
    -- handoff (the index checkpoint is older than the stream's coverage), trimmed (a
    -- shard's records were trimmed before they were read), lost (a shard aged out unread),
    -- stream replaced (the stream was disabled and enabled again).
    reason text not null,
    from_at timestamptz,
    to_at timestamptz,
    detected_at timestamptz not null default now(),
    healed_at timestamptz,
    -- The last heal tried (a failed one is tried again a minute later), its run and error.
    attempted_at timestamptz,
    heal_run_id bigint,
    heal_error text
);
create unique index if not exists stream_gaps_once
    on stream_gaps (table_name, reason, coalesce(stream_arn, ''), coalesce(from_at, '-infinity'));
