-- The canonical store (docs/contract.md) and the bookkeeping tables, version 1.
-- Runs inside the target schema (search_path); every statement is idempotent.

-- Versions are (source_updated_at, source_scan_id): newest instant wins, ties go to the
-- greater scan id, so replays in any order converge.
create table if not exists creators (
    id bigint generated always as identity primary key,
    platform text not null,
    external_id text not null,
    handle text,
    display_name text,
    follower_count numeric,
    source_updated_at timestamptz not null,
    source_scan_id text not null,
    deleted_at timestamptz,
    unique (platform, external_id)
);

create table if not exists communities (
    id bigint generated always as identity primary key,
    platform text not null,
    external_id text not null,
    name text,
    source_updated_at timestamptz not null,
    source_scan_id text not null,
    unique (platform, external_id)
);

create table if not exists tags (
    id bigint generated always as identity primary key,
    name text not null unique
);

-- The live columns hold the newest live record (source_updated_at/source_scan_id are its
-- version; null while only a tombstone was seen). deleted_at/deleted_scan_id hold the
-- newest tombstone, and are set exactly while it is newer than the newest live record.
create table if not exists content (
    id bigint generated always as identity primary key,
    platform text not null,
    external_id text not null,
    url text,
    caption text,
    creator_id bigint references creators (id),
    community_id bigint references communities (id),
    view_count numeric,
    like_count numeric,
    comment_count numeric,
    share_count numeric,
    posted_at timestamptz,
    source_updated_at timestamptz,
    source_scan_id text,
    metadata jsonb,
    extra jsonb,
    deleted_at timestamptz,
    deleted_scan_id text,
    synced_at timestamptz not null default now(),
    unique (platform, external_id)
);

create table if not exists content_tags (
    content_id bigint not null references content (id) on delete cascade,
    tag_id bigint not null references tags (id),
    primary key (content_id, tag_id)
);
create index if not exists content_tags_tag_id on content_tags (tag_id);

-- The incremental checkpoint when the checkpoint store is PostgreSQL: the start time of the
-- last successful run. It only moves forward.
create table if not exists checkpoints (
    name text primary key,
    value timestamptz not null,
    updated_at timestamptz not null default now()
);

-- The run ledger: one row per run, written at start (running) and at the end.
create table if not exists sync_runs (
    id bigint generated always as identity primary key,
    kind text not null,
    status text not null check (status in ('running', 'succeeded', 'failed')),
    started_at timestamptz not null,
    finished_at timestamptz,
    window_after timestamptz,
    first_partition date,
    last_partition date,
    pages bigint not null default 0,
    records_read bigint not null default 0,
    records_skipped bigint not null default 0,
    rows_creators bigint not null default 0,
    rows_communities bigint not null default 0,
    rows_tags bigint not null default 0,
    rows_content bigint not null default 0,
    rows_content_tags bigint not null default 0,
    quarantined bigint not null default 0,
    rejects jsonb not null default '{}',
    repairs jsonb not null default '{}',
    drift bigint not null default 0,
    page_retries bigint not null default 0,
    error text
);
create index if not exists sync_runs_kind_started on sync_runs (kind, started_at desc);

-- Records beyond repair, with the raw record (DynamoDB JSON text; NUL written as \u0000).
-- The same record seen again is not added twice.
create table if not exists quarantine (
    id bigint generated always as identity primary key,
    reason text not null,
    scan_id text,
    partition text,
    raw text not null,
    run_id bigint,
    quarantined_at timestamptz not null default now()
);
create unique index if not exists quarantine_once on quarantine (reason, md5(raw));

-- The drift ledger: attributes outside the contract, and known ones seen with a new type.
create table if not exists schema_drift (
    attribute text not null,
    observed_type text not null,
    first_seen timestamptz not null,
    last_seen timestamptz not null,
    count bigint not null,
    primary key (attribute, observed_type)
);
