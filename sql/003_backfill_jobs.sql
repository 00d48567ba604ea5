-- Version 3: a run stopped by a signal is `cancelled` (not a failure: the next run picks up
-- from the checkpoint) ...
alter table sync_runs drop constraint if exists sync_runs_status_check;
alter table sync_runs add constraint sync_runs_status_check
    check (status in ('running', 'succeeded', 'failed', 'abandoned', 'cancelled'));
-- The upper bound of a run bounded by --max-window (null: the window reached the run's start).
alter table sync_runs add column if not exists window_until timestamptz;

-- ... and backfills are jobs of units (day slices, export files) that many workers share,
-- that resume after an interruption, and that report their progress.

-- One backfill, identified by what it covers: running the same command again finds it.
create table if not exists backfill_jobs (
    id bigint generated always as identity primary key,
    -- source, what it reads (table/index, export location) and the day range: the identity.
    job_key text collate "C" not null unique,
    source text not null,
    target text not null,
    from_day date,
    to_day date,
    -- Key slices per day partition the units were cut with (DynamoDB): a resume reads the
    -- units the same way whatever --slices says.
    slices int,
    created_at timestamptz not null default now(),
    restarted_at timestamptz,
    -- Set when every unit is done.
    finished_at timestamptz
);

-- A unit of a job. `state` is pending, running (claimed by `worker_id`), done or failed. A
-- unit `running` whose worker no longer holds its advisory lock was abandoned (the worker
-- died) and is claimed again. `completions` counts how often the unit was finished (it is
-- 1 for a done unit unless the job was restarted).
create table if not exists backfill_units (
    job_id bigint not null references backfill_jobs (id) on delete cascade,
    unit text collate "C" not null,
    ordinal int not null,
    -- Records the unit is expected to hold (an export manifest's itemCount), if known.
    size_hint bigint,
    state text not null default 'pending' check (state in ('pending', 'running', 'done', 'failed')),
    worker_id bigint,
    worker text,
    attempts int not null default 0,
    completions int not null default 0,
    records bigint not null default 0,
    pages bigint not null default 0,
    started_at timestamptz,
    finished_at timestamptz,
    last_error text,
    primary key (job_id, unit)
);
create index if not exists backfill_units_claim on backfill_units (job_id, state, ordinal);

-- The workers of a job. A worker holds the session advisory lock
-- hashtextextended('scansync-backfill-worker:<schema>:<id>', 0) while it lives: PostgreSQL
-- releases it when the worker's connection ends (kill -9, a lost host), which gives its
-- units back without anyone's help.
create table if not exists backfill_workers (
    id bigint generated always as identity primary key,
    job_id bigint not null references backfill_jobs (id) on delete cascade,
    name text not null,
    run_id bigint,
    started_at timestamptz not null default now(),
    finished_at timestamptz
);
create index if not exists backfill_workers_job on backfill_workers (job_id);
