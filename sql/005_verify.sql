-- Version 5: `scansync verify`. A verify that records itself (`--record`, `--repair`, and
-- serve's and the Lambda's scheduled verifies) is a `sync_runs` row of kind `verify`, with
-- the keys it found in each state: content, creators and communities together. `health`
-- and `/metrics` read the newest one.
alter table sync_runs
    add column if not exists verify_missing bigint,
    add column if not exists verify_stale bigint,
    add column if not exists verify_diverged bigint,
    add column if not exists verify_ahead bigint,
    -- Divergent keys left after the run: all of them without --repair, and those a repair
    -- did not bring to the source's newest version (0 when every one was repaired).
    add column if not exists verify_unrepaired bigint;
