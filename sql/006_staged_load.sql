-- Version 6: the staged first load. A backfill into an empty store lands every page's rows
-- in unlogged staging tables (no index, no key: COPY speed) and folds them into the
-- canonical tables once, set-based, when the job's last unit is done (docs/backfill.md).

alter table backfill_jobs
    -- The job lands through the staging tables (decided when it starts into an empty store).
    add column if not exists staged boolean not null default false,
    -- When its staged rows were folded into the canonical tables (NULL: not yet).
    add column if not exists folded_at timestamptz;

-- A page's content rows as the writer encodes them (the columns of its staging table).
create unlogged table if not exists bulk_content (
    platform text, external_id text,
    source_updated_at timestamptz, source_scan_id text collate "C",
    url text, caption text,
    view_count numeric, like_count numeric, comment_count numeric, share_count numeric,
    posted_at timestamptz, metadata text, extra text,
    creator_external_id text, community_external_id text, tags text[],
    deleted_at timestamptz, deleted_scan_id text collate "C", removed_at timestamptz
);
-- A page's newest creators and communities, with their versions, and its tags.
create unlogged table if not exists bulk_creators (
    platform text, external_id text, source_updated_at timestamptz, source_scan_id text collate "C",
    handle text, display_name text, follower_count numeric, deleted boolean
);
create unlogged table if not exists bulk_communities (
    platform text, external_id text, source_updated_at timestamptz, source_scan_id text collate "C",
    name text
);
create unlogged table if not exists bulk_tags (name text);
-- One row per staged job whose rows are in the tables above. Unlogged too: PostgreSQL
-- empties unlogged tables after a crash, and this row goes with the rows it vouches for, so
-- the next worker knows to load the job's done units again.
create unlogged table if not exists bulk_staged (job_id bigint primary key);
