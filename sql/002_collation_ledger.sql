-- Version 2: scan ids compare byte by byte everywhere, and the run ledger says what the
-- index was asked for and what it returned.

-- Ties between versions that share an instant go to the greater scan id, compared byte by
-- byte: the in-page fold in Rust does so, and the merges must agree whatever collation the
-- database was created with (ICU and en_US, the default of managed services, order 'a'
-- before 'B'; bytes order 'B' first). "C" is byte order.
alter table creators alter column source_scan_id type text collate "C";
alter table communities alter column source_scan_id type text collate "C";
alter table content alter column source_scan_id type text collate "C";
alter table content alter column deleted_scan_id type text collate "C";

-- A run whose process ended without finishing (killed, host lost): found and marked by the
-- next run that takes the lock, or reported so by health when no run holds it.
alter table sync_runs drop constraint if exists sync_runs_status_check;
alter table sync_runs add constraint sync_runs_status_check
    check (status in ('running', 'succeeded', 'failed', 'abandoned'));

alter table sync_runs
    -- Items the index returned before any trim (read amplification = index_items ÷
    -- (records_read − records_skipped)); null for sources without an index.
    add column if not exists index_items bigint,
    -- The offset margin the run read with, in seconds (null: not an incremental run).
    add column if not exists offset_margin_seconds int,
    -- Records read per updatedAt form ("Z", "+00:00", "-05:00", "space Z", "epoch", …).
    add column if not exists stamp_forms jsonb not null default '{}',
    -- Records stamped further west of UTC than the margin: the index query can miss such.
    add column if not exists beyond_margin bigint not null default 0,
    -- Records whose updatedAt is an epoch number: the index query never finds them.
    add column if not exists epoch_stamps bigint not null default 0;

-- Where a quarantined record was read from: the partition, or the export file and line
-- (`file-00.json.gz:17`), so an operator can find it in the source.
alter table quarantine add column if not exists origin text;
