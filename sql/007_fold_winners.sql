-- Version 7: the staged fold's winners in a table of their own, so that the fold can write
-- content and its edges on two connections at once (docs/backfill.md): each winning staged
-- row (`t`, its address in `bulk_content`) with its fresh content id and, where the newest
-- tombstone wins, that tombstone. Unlogged, and empty except while a fold runs.
create unlogged table if not exists bulk_fold (
    id bigint, t tid, platform text, external_id text,
    deleted_at timestamptz, deleted_scan_id text collate "C", removed_at timestamptz
);
