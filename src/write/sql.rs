//! The merge statements, one constant per step, each with the invariant it keeps.
//!
//! After the first phase ([`FRESH_ROWS`]), creators, communities and tags are written in a
//! short transaction of their own ([`UPSERT_CREATORS`], [`UPSERT_COMMUNITIES`],
//! [`MERGE_TAGS`]); then, in the page's transaction: content rows the store does not hold
//! are COPYed in ([`COPY_NEW_CONTENT`]), rows it holds updated by id ([`UPDATE_CONTENT_LIVE`]
//! → tag edges → [`UPDATE_CONTENT_TOMBSTONES`]), and absent rows merged after all go through
//! the staging table, filled by COPY: content (live) → tag edges → content (tombstones).
//! Stale rows are filtered out *before* each upsert: a guarded `ON CONFLICT … WHERE` that
//! skips a row still locks it and writes WAL, so a replay would cost as much as a load.
//!
//! Rows of `creators`, `communities` and `tags` are looked up by scalar or lateral
//! subqueries, one index probe each: as joins, the planner hash-joined whole tables on
//! every page (its statistics lag a load that grows them; measured: 40 ms of a 110 ms
//! statement at 30k creators, and growing with the store).

use std::sync::LazyLock;

/// Staging tables of the page transaction, created once per writer connection; emptied at
/// every commit.
/// Scan ids are `collate "C"` like their target columns: ties compare byte by byte, as the
/// in-page fold in Rust does, whatever the database's default collation.
/// `metadata` and `extra` are `jsonb`, as in `content`: only rows the first phase keeps are
/// staged, and those are written (a replay stages nothing); and a new row's COPY into
/// `content` shares their encoding. (The table of releases before that, `stage_content`,
/// had them as `text`: a new name, so that a session a pooler kept from an older release
/// never receives `jsonb` into its `text` columns.)
pub const CREATE_STAGING: &str = r#"
create temp table if not exists stage_rows (
    platform text, external_id text,
    source_updated_at timestamptz, source_scan_id text collate "C",
    url text, caption text,
    view_count numeric, like_count numeric, comment_count numeric, share_count numeric,
    posted_at timestamptz, metadata jsonb, extra jsonb,
    creator_external_id text, community_external_id text, tags text[],
    deleted_at timestamptz, deleted_scan_id text collate "C", removed_at timestamptz
) on commit delete rows;
create temp table if not exists stage_winners (
    content_id bigint, platform text, external_id text, inserted boolean
) on commit delete rows;
create temp table if not exists stage_edges (
    content_id bigint, tag_id bigint, inserted boolean
) on commit delete rows;
"#;

/// COPY targets, column order matching the writer's encoding, in binary
/// ([`crate::write::copy`]).
/// COPY into the content staging table. The columns up to `extra` are also the tail of a
/// row in [`COPY_NEW_CONTENT`]: a row's payload up to there is sent to either.
pub const COPY_CONTENT: &str = "copy stage_rows (platform, external_id, source_updated_at, source_scan_id, url, caption, view_count, like_count, comment_count, share_count, posted_at, metadata, extra, creator_external_id, community_external_id, tags, deleted_at, deleted_scan_id, removed_at) from stdin with (format binary)";

/// Content rows the first phase found absent, COPYed straight into `content` with the ids
/// resolved by [`ENTITY_IDS`] and the tombstone already applied: no staging, no upsert.
/// A row another session inserted since fails the COPY on the unique key, and the page is
/// merged instead.
pub const COPY_NEW_CONTENT: &str = "copy content (id, creator_id, community_id, deleted_at, deleted_scan_id, removed_at, platform, external_id, source_updated_at, source_scan_id, url, caption, view_count, like_count, comment_count, share_count, posted_at, metadata, extra) from stdin with (format binary)";

/// The tag edges of the rows of [`COPY_NEW_CONTENT`]: new content ids, so no edge exists.
pub const COPY_NEW_EDGES: &str = "copy content_tags (content_id, tag_id) from stdin with (format binary)";

/// The table a row of [`ENTITY_IDS`] answers for: its first column. The statement is built
/// from these values, so the tags the writer reads and the SQL can never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityTable {
    /// `$1` platform, `$2` external id.
    Creators = 0,
    /// `$3` platform, `$4` external id.
    Communities = 1,
    /// `$5` names.
    Tags = 2,
}

impl EntityTable {
    /// The table of a row's tag.
    pub fn of(tag: i32) -> Option<Self> {
        [Self::Creators, Self::Communities, Self::Tags].into_iter().find(|t| *t as i32 == tag)
    }
}

/// The ids the new content rows reference that neither the first phase ([`FRESH_ROWS`])
/// nor the inserts of [`UPSERT_CREATORS`], [`UPSERT_COMMUNITIES`] and [`MERGE_TAGS`]
/// returned, and the writer does not remember: rows another session inserted meanwhile
/// (so this page's insert did nothing), or that the writer forgot. As ([`EntityTable`],
/// 0-based index, id) triples. Usually not run at all. Ids never change, and no row of these
/// three tables is ever deleted.
pub static ENTITY_IDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"
select {creators}, s.ord - 1,
       (select e.id from creators e where e.platform = s.platform and e.external_id = s.external_id)
from unnest($1::text[], $2::text[]) with ordinality as s(platform, external_id, ord)
union all
select {communities}, s.ord - 1,
       (select e.id from communities e where e.platform = s.platform and e.external_id = s.external_id)
from unnest($3::text[], $4::text[]) with ordinality as s(platform, external_id, ord)
union all
select {tags}, n.ord - 1, (select t.id from tags t where t.name = n.name)
from unnest($5::text[]) with ordinality as n(name, ord)
"#,
        creators = EntityTable::Creators as i32,
        communities = EntityTable::Communities as i32,
        tags = EntityTable::Tags as i32,
    )
});

/// The table a row of [`FRESH_ROWS`] answers for: its first column. The statement is built
/// from these values, so the tags the writer reads and the SQL can never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshTable {
    /// Content the store holds, newer in the page.
    Content = 0,
    /// Creators asked about.
    Creators = 1,
    /// Communities asked about.
    Communities = 2,
    /// Tags asked about.
    Tags = 3,
    /// Content the store does not hold.
    Absent = 4,
}

impl FreshTable {
    /// Every table, by its tag.
    pub const ALL: [FreshTable; 5] =
        [Self::Content, Self::Creators, Self::Communities, Self::Tags, Self::Absent];

    /// The table of a row's tag.
    pub fn of(tag: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as i32 == tag)
    }
}

/// The rows of a page that may change the store, and the ids the page's new content rows
/// need, as ([`FreshTable`], 0-based index, id, changes) rows.
///
/// [`FreshTable::Content`] is content the store holds and may change, with its id,
/// [`FreshTable::Absent`] content it does not hold, with a fresh id from the sequence named
/// `$16` for each ($1 platform, $2 external id, $3/$4 live version, $5/$6 tombstone version;
/// text, NULL where the row has none). Creators ($7–$10: platform, external id, version) and communities
/// ($11–$14) list every row asked about, with its id if the store holds it and whether the
/// page's version is newer (or the row absent); tags ($15: names) likewise, changing where
/// absent.
///
/// What changes is the complement of the filters of the statements that write each table:
/// a row is left out only if they would take nothing from it (for content
/// [`MERGE_CONTENT_LIVE`] and [`MERGE_CONTENT_TOMBSTONES`]; for creators and communities
/// the upserts' version guards; for tags [`MERGE_TAGS`]). Scan ids compare byte-wise, as
/// everywhere. A new content row's id is taken here, in the same probe that found it
/// absent (`coalesce` takes it only then); if the row is merged after all, its id is a gap
/// in the sequence. A row the store holds is then updated by its id ([`UPDATE_CONTENT_LIVE`]).
pub static FRESH_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"
select case when e.id is null then {absent} else {content} end, s.ord - 1,
       coalesce(e.id, nextval($16::text::regclass)), true, null::timestamptz, null::text
from unnest($1::text[], $2::text[], $3::text[]::timestamptz[], $4::text[],
            $5::text[]::timestamptz[], $6::text[])
     with ordinality as s(platform, external_id, live_at, live_scan, tomb_at, tomb_scan, ord)
left join content e on e.platform = s.platform and e.external_id = s.external_id
where e.id is null
   or (s.live_at is not null
       and (e.source_updated_at is null
            or (e.source_updated_at, e.source_scan_id) < (s.live_at, s.live_scan collate "C")))
   or (s.tomb_at is not null
       and (s.tomb_at, s.tomb_scan collate "C")
           > (coalesce(e.source_updated_at, '-infinity'), coalesce(e.source_scan_id, ''))
       and (e.deleted_at is null
            or (s.tomb_at, s.tomb_scan collate "C") > (e.deleted_at, e.deleted_scan_id)))
union all
select {creators}, s.ord - 1, e.id, coalesce(e.older, true), e.source_updated_at, e.source_scan_id
from unnest($7::text[], $8::text[], $9::text[]::timestamptz[], $10::text[])
     with ordinality as s(platform, external_id, at, scan, ord)
left join lateral (
    select c.id, (c.source_updated_at, c.source_scan_id) < (s.at, s.scan collate "C") as older,
           c.source_updated_at, c.source_scan_id
    from creators c where c.platform = s.platform and c.external_id = s.external_id
) e on true
union all
select {communities}, s.ord - 1, e.id, coalesce(e.older, true), e.source_updated_at, e.source_scan_id
from unnest($11::text[], $12::text[], $13::text[]::timestamptz[], $14::text[])
     with ordinality as s(platform, external_id, at, scan, ord)
left join lateral (
    select c.id, (c.source_updated_at, c.source_scan_id) < (s.at, s.scan collate "C") as older,
           c.source_updated_at, c.source_scan_id
    from communities c where c.platform = s.platform and c.external_id = s.external_id
) e on true
union all
select {tags}, n.ord - 1, t.id, t.id is null, null, null
from unnest($15::text[]) with ordinality as n(name, ord)
left join lateral (select t.id from tags t where t.name = n.name) t on true
"#,
        content = FreshTable::Content as i32,
        creators = FreshTable::Creators as i32,
        communities = FreshTable::Communities as i32,
        tags = FreshTable::Tags as i32,
        absent = FreshTable::Absent as i32,
    )
});

/// Creators the page holds a newer version of than the store (or that it lacks), in a
/// short transaction of their own before the page's ([`crate::write`]'s writer explains
/// why). A creator only takes a newer version (instant, then scan id); a row another
/// session wrote meanwhile is checked again by the guard. Rows in key order, so two writers
/// lock shared (hot) creators in the same order. Returns the id of each row it wrote.
///
/// The rows come as arrays, not through a staging table: a transaction that touches a temp
/// table pays at its commit for emptying every `on commit delete rows` table, a file
/// truncation each (measured in psql: 1.5 ms a commit for the five staging tables there
/// were, empty; 9–13 ms after a COPY of 400 content rows), and this one commits once a page.
pub const UPSERT_CREATORS: &str = "
insert into creators as c (platform, external_id, handle, display_name, follower_count,
                           source_updated_at, source_scan_id, deleted_at)
select s.platform, s.external_id, s.handle, s.display_name, s.follower_count::numeric,
       s.at::timestamptz, s.scan, case when s.deleted then s.at::timestamptz end
from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::bool[]) as s(platform, external_id, at, scan, handle, display_name, follower_count,
                             deleted)
order by s.platform, s.external_id
on conflict (platform, external_id) do update set
    handle = excluded.handle,
    display_name = excluded.display_name,
    follower_count = excluded.follower_count,
    source_updated_at = excluded.source_updated_at,
    source_scan_id = excluded.source_scan_id,
    deleted_at = excluded.deleted_at
where (c.source_updated_at, c.source_scan_id) < (excluded.source_updated_at, excluded.source_scan_id)
returning c.platform, c.external_id, c.id
";

/// Communities, as [`UPSERT_CREATORS`] (the same parameters; `$6`, `$7` and `$8` unused).
pub const UPSERT_COMMUNITIES: &str = "
insert into communities as c (platform, external_id, name, source_updated_at, source_scan_id)
select s.platform, s.external_id, s.name, s.at::timestamptz, s.scan
from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::bool[]) as s(platform, external_id, at, scan, name)
order by s.platform, s.external_id
on conflict (platform, external_id) do update set
    name = excluded.name,
    source_updated_at = excluded.source_updated_at,
    source_scan_id = excluded.source_scan_id
where (c.source_updated_at, c.source_scan_id) < (excluded.source_updated_at, excluded.source_scan_id)
returning c.platform, c.external_id, c.id
";

/// Every tag of the page's live records exists afterwards ($1: sorted names). Names
/// already there are filtered first so `ON CONFLICT DO NOTHING` does not burn identities.
/// Returns the id of each tag it inserted.
pub const MERGE_TAGS: &str = "
insert into tags (name)
select n.name
from unnest($1::text[]) as n(name)
where not exists (select 1 from tags e where e.name = n.name)
order by 1
on conflict (name) do nothing
returning name, id
";

/// Live values: a content row takes the page's record only if it is a newer live version.
/// A tombstone on the row survives only while it is newer than the new live version.
/// The rows that changed are noted in `stage_winners` (with whether they were inserted,
/// `xmax = 0`) for the tag edge statements.
pub const MERGE_CONTENT_LIVE: &str = "
with incoming as (
    select s.*,
           (select cr.id from creators cr
            where cr.platform = s.platform and cr.external_id = s.creator_external_id) as creator_id,
           (select cm.id from communities cm
            where cm.platform = s.platform and cm.external_id = s.community_external_id) as community_id
    from stage_rows s
    left join content e on e.platform = s.platform and e.external_id = s.external_id
    -- A row comparison with a NULL member is NULL, neither true nor false: a row that holds
    -- only a tombstone (no live version yet) is tested for explicitly, or it could never take
    -- a live version.
    where s.source_updated_at is not null
      and (e.id is null or e.source_updated_at is null
           or (e.source_updated_at, e.source_scan_id) < (s.source_updated_at, s.source_scan_id))
), up as (
    insert into content as c (platform, external_id, url, caption, creator_id, community_id,
        view_count, like_count, comment_count, share_count, posted_at,
        source_updated_at, source_scan_id, metadata, extra, synced_at)
    select platform, external_id, url, caption, creator_id, community_id,
        view_count, like_count, comment_count, share_count, posted_at,
        source_updated_at, source_scan_id, metadata, extra, now()
    from incoming
    order by platform, external_id
    on conflict (platform, external_id) do update set
        url = excluded.url,
        caption = excluded.caption,
        creator_id = excluded.creator_id,
        community_id = excluded.community_id,
        view_count = excluded.view_count,
        like_count = excluded.like_count,
        comment_count = excluded.comment_count,
        share_count = excluded.share_count,
        posted_at = excluded.posted_at,
        source_updated_at = excluded.source_updated_at,
        source_scan_id = excluded.source_scan_id,
        metadata = excluded.metadata,
        extra = excluded.extra,
        synced_at = excluded.synced_at,
        deleted_at = case when (c.deleted_at, c.deleted_scan_id)
                               > (excluded.source_updated_at, excluded.source_scan_id)
                          then c.deleted_at end,
        deleted_scan_id = case when (c.deleted_at, c.deleted_scan_id)
                                    > (excluded.source_updated_at, excluded.source_scan_id)
                               then c.deleted_scan_id end,
        removed_at = case when (c.deleted_at, c.deleted_scan_id)
                               > (excluded.source_updated_at, excluded.source_scan_id)
                          then c.removed_at end
    where c.source_updated_at is null
       or (c.source_updated_at, c.source_scan_id) < (excluded.source_updated_at, excluded.source_scan_id)
    returning c.id, c.platform, c.external_id, (c.xmax = 0) as inserted
)
insert into stage_winners (content_id, platform, external_id, inserted)
select id, platform, external_id, inserted from up
";

/// The edges the changed rows must have: each winner × its record's tags.
pub const STAGE_EDGES: &str = "
insert into stage_edges (content_id, tag_id, inserted)
select w.content_id, t.id, w.inserted
from stage_winners w
join stage_rows s on s.platform = w.platform and s.external_id = w.external_id
cross join lateral unnest(s.tags) as n(name)
join tags t on t.name = n.name
";

/// Tag edges follow the winning record: edges of updated rows outside the new tag set go
/// (rows inserted by this page have no edges yet).
///
/// This must be a statement of its own, after the upsert: in READ COMMITTED each statement
/// takes a new snapshot, so it sees edges another writer committed while this transaction
/// waited for the content row's lock. (As a CTE of the upsert it would miss them and leave
/// stale edges behind.) The row lock taken by the upsert keeps other writers off these
/// rows' edges until commit.
///
/// The ids come as an array (`= any(array(…))`, computed once) so the only plan is an
/// index probe per updated row: joined with the staging tables, the planner (which has no
/// statistics for them) walked the whole `content_tags` index instead (measured: 50 ms a
/// page for 100 updated rows).
pub const DELETE_STALE_EDGES: &str = "
delete from content_tags ct
where ct.content_id = any(array(select content_id from stage_winners where not inserted))
  and not exists (select 1 from stage_edges e where e.content_id = ct.content_id and e.tag_id = ct.tag_id)
";

/// Adds the edges of changed rows that are missing.
pub const INSERT_EDGES: &str = "
insert into content_tags (content_id, tag_id)
select content_id, tag_id from stage_edges
order by 1, 2
on conflict do nothing
";

/// Tombstones: `deleted_at` is set when the tombstone is newer than the newest live version
/// and than any tombstone already recorded; other columns keep their last live values. A
/// removal is a tombstone versioned just after the version it removed, with `removed_at`
/// (the time of the removal; NULL for a record's own `deleted` flag). Returns, per row it
/// changed, whether a removal did.
pub const MERGE_CONTENT_TOMBSTONES: &str = "
insert into content as c (platform, external_id, deleted_at, deleted_scan_id, removed_at, synced_at)
select s.platform, s.external_id, s.deleted_at, s.deleted_scan_id, s.removed_at, now()
from stage_rows s
left join content e on e.platform = s.platform and e.external_id = s.external_id
where s.deleted_at is not null
  -- NULLs again: a missing live version compares as the oldest possible ('-infinity', ''),
  -- and a missing tombstone is tested for explicitly.
  and (e.id is null or (
        (s.deleted_at, s.deleted_scan_id) > (coalesce(e.source_updated_at, '-infinity'), coalesce(e.source_scan_id, ''))
        and (e.deleted_at is null or (s.deleted_at, s.deleted_scan_id) > (e.deleted_at, e.deleted_scan_id))))
order by s.platform, s.external_id
on conflict (platform, external_id) do update set
    deleted_at = excluded.deleted_at,
    deleted_scan_id = excluded.deleted_scan_id,
    removed_at = excluded.removed_at,
    synced_at = excluded.synced_at
where (excluded.deleted_at, excluded.deleted_scan_id)
        > (coalesce(c.source_updated_at, '-infinity'), coalesce(c.source_scan_id, ''))
  and (c.deleted_at is null or (excluded.deleted_at, excluded.deleted_scan_id) > (c.deleted_at, c.deleted_scan_id))
returning (c.removed_at is not null)
";

/// Live values of content rows the store holds, by the id the first phase found them under
/// ([`FRESH_ROWS`]), with the creator's and community's ids the writer holds: the merge of
/// [`MERGE_CONTENT_LIVE`] without its key lookups (the row by its key, its creator and
/// community by subqueries) and without a speculative insert. The same rule: a row takes the
/// page's record only if it is a newer live version, and a tombstone on it survives only
/// while newer. Returns the id of each row it changed, for the edges. (An id never changes,
/// and no content row is ever deleted.)
///
/// The rows come as arrays, sorted by id, so the plan is a probe of the primary key per
/// row, taken in id order by every writer; and no staging table is touched: a transaction
/// that touched one pays at its commit for emptying them all (measured: 2–14 ms a commit).
/// ($1 ids, $2 creator ids, $3 community ids, $4 `updatedAt`, $5 scan ids, $6 url, $7
/// caption, $8–$11 counts, $12 posted at, $13 metadata, $14 extra.)
pub const UPDATE_CONTENT_LIVE: &str = r#"
update content c set
    url = s.url,
    caption = s.caption,
    creator_id = s.creator_id,
    community_id = s.community_id,
    view_count = s.view_count::numeric,
    like_count = s.like_count::numeric,
    comment_count = s.comment_count::numeric,
    share_count = s.share_count::numeric,
    posted_at = s.posted_at,
    source_updated_at = s.at,
    source_scan_id = s.scan,
    metadata = s.metadata::jsonb,
    extra = s.extra::jsonb,
    synced_at = now(),
    deleted_at = case when (c.deleted_at, c.deleted_scan_id) > (s.at, s.scan collate "C")
                      then c.deleted_at end,
    deleted_scan_id = case when (c.deleted_at, c.deleted_scan_id) > (s.at, s.scan collate "C")
                           then c.deleted_scan_id end,
    removed_at = case when (c.deleted_at, c.deleted_scan_id) > (s.at, s.scan collate "C")
                      then c.removed_at end
from unnest($1::int8[], $2::int8[], $3::int8[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[], $14::text[])
     as s(id, creator_id, community_id, at, scan, url, caption, view_count, like_count, comment_count,
          share_count, posted_at, metadata, extra)
where c.id = s.id
  and s.at is not null
  and (c.source_updated_at is null or (c.source_updated_at, c.source_scan_id) < (s.at, s.scan collate "C"))
returning c.id
"#;

/// Tag edges of the rows [`UPDATE_CONTENT_LIVE`] changed ($1) that their records no longer
/// have ($2/$3: the page's edges of those rows, content id and tag id). A statement of its
/// own after the update, as [`DELETE_STALE_EDGES`] is: it sees the edges another writer
/// committed while the update waited for the row's lock.
pub const DELETE_STALE_EDGES_BY_ID: &str = "
delete from content_tags ct
where ct.content_id = any($1::int8[])
  and (ct.content_id, ct.tag_id) not in (select * from unnest($2::int8[], $3::int8[]))
";

/// The edges of the rows [`UPDATE_CONTENT_LIVE`] changed ($1) that are missing ($2/$3 as in
/// [`DELETE_STALE_EDGES_BY_ID`]). No `ON CONFLICT`: every writer changes a content row's
/// edges only while it holds the row's lock (an update, an upsert, or a row it inserts under
/// a fresh id), and this transaction holds it, so no edge of these rows appears meanwhile.
pub const INSERT_EDGES_BY_ID: &str = "
insert into content_tags (content_id, tag_id)
select e.content_id, e.tag_id
from unnest($2::int8[], $3::int8[]) as e(content_id, tag_id)
where e.content_id = any($1::int8[])
  and not exists (select 1 from content_tags ct where ct.content_id = e.content_id and ct.tag_id = e.tag_id)
order by 1, 2
";

/// Tombstones of content rows the store holds, by id: [`MERGE_CONTENT_TOMBSTONES`]'s rule
/// without its key lookup and speculative insert ($1 ids, $2 the tombstones' instants, $3
/// their scan ids, $4 when the source removed the item). Returns, per row it changed,
/// whether a removal did.
pub const UPDATE_CONTENT_TOMBSTONES: &str = r#"
update content c set
    deleted_at = s.at,
    deleted_scan_id = s.scan,
    removed_at = s.removed_at,
    synced_at = now()
from unnest($1::int8[], $2::timestamptz[], $3::text[], $4::timestamptz[]) as s(id, at, scan, removed_at)
where c.id = s.id
  and (s.at, s.scan collate "C") > (coalesce(c.source_updated_at, '-infinity'), coalesce(c.source_scan_id, ''))
  and (c.deleted_at is null or (s.at, s.scan collate "C") > (c.deleted_at, c.deleted_scan_id))
returning (c.removed_at is not null)
"#;

/// Quarantine: one row per (reason, raw record); seen again, nothing is added.
pub const INSERT_QUARANTINE: &str = "
insert into quarantine (reason, scan_id, partition, raw, run_id, origin)
select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[])
on conflict (reason, md5(raw)) do nothing
";

/// A stream shard's position, in the page's own transaction: it moves only forward, and only
/// from where this follower left it ($1 stream ARN, $2 shard id, $3 the page's last sequence
/// number, $4 its approximate time, $5 records). Sequence numbers are decimal digits of any
/// length: compared as numbers.
pub const ADVANCE_SHARD: &str = "
update stream_shards set position = $3, last_record_at = coalesce($4::text::timestamptz, last_record_at),
       records = records + $5, updated_at = now()
where stream_arn = $1 and shard_id = $2 and state = 'open'
  and (position is null or position::numeric < $3::text::numeric)
";

/// A staged page's first statement: its job is still unfolded. `for share` waits for a fold
/// in progress (it locks the row `for update`) and then sees it: no page lands in the
/// staging tables after its job's fold, where nothing would fold it.
pub const STAGED_JOB_OPEN: &str =
    "select staged and folded_at is null from backfill_jobs where id = $1 for share";

/// The staged first load (docs/backfill.md): a page's content rows COPYed as they are
/// encoded for the writer's staging table, into the unlogged, unindexed `bulk_content`.
pub static COPY_BULK_CONTENT: LazyLock<String> =
    LazyLock::new(|| COPY_CONTENT.replacen("copy stage_rows", "copy bulk_content", 1));

/// A staged page's creators (their newest version in the page), appended to `bulk_creators`.
pub const COPY_BULK_CREATORS: &str = "copy bulk_creators (platform, external_id, source_updated_at, source_scan_id, handle, display_name, follower_count, deleted) from stdin with (format binary)";

/// A staged page's communities, appended to `bulk_communities`.
pub const COPY_BULK_COMMUNITIES: &str = "copy bulk_communities (platform, external_id, source_updated_at, source_scan_id, name) from stdin with (format binary)";

/// A staged page's tags, appended to `bulk_tags`.
pub const COPY_BULK_TAGS: &str = "copy bulk_tags (name) from stdin with (format binary)";

/// The fold of a staged load, step 1: the newest version of each staged creator, merged as
/// [`UPSERT_CREATORS`] merges (a row another run wrote meanwhile is replaced only by a
/// newer version).
///
/// The fold's sorts (here, [`FOLD_COMMUNITIES`], [`PICK_WINNERS`]) only group rows by key, so
/// they sort by external id first, in the "C" collation: the database's collation compares
/// text with `strcoll` and leaves the sort no abbreviated keys, and the platform, a handful
/// of values, made a poor first key. Equality is byte equality either way, so the groups
/// are the same. Measured on 1M staged records: the winners' pick took 4.6–5.3 s against
/// 6.4–7.0 s, the creators' 3.5 s against 4.4–4.7 s.
pub const FOLD_CREATORS: &str = r#"
insert into creators as c (platform, external_id, handle, display_name, follower_count,
                           source_updated_at, source_scan_id, deleted_at)
select distinct on (external_id collate "C", platform collate "C")
       platform, external_id, handle, display_name, follower_count, source_updated_at, source_scan_id,
       case when deleted then source_updated_at end
from bulk_creators
order by external_id collate "C", platform collate "C", source_updated_at desc, source_scan_id desc
on conflict (platform, external_id) do update set
    handle = excluded.handle, display_name = excluded.display_name,
    follower_count = excluded.follower_count, source_updated_at = excluded.source_updated_at,
    source_scan_id = excluded.source_scan_id, deleted_at = excluded.deleted_at
where (c.source_updated_at, c.source_scan_id) < (excluded.source_updated_at, excluded.source_scan_id)
"#;

/// As [`FOLD_CREATORS`], for communities.
pub const FOLD_COMMUNITIES: &str = r#"
insert into communities as c (platform, external_id, name, source_updated_at, source_scan_id)
select distinct on (external_id collate "C", platform collate "C")
       platform, external_id, name, source_updated_at, source_scan_id
from bulk_communities
order by external_id collate "C", platform collate "C", source_updated_at desc, source_scan_id desc
on conflict (platform, external_id) do update set
    name = excluded.name, source_updated_at = excluded.source_updated_at,
    source_scan_id = excluded.source_scan_id
where (c.source_updated_at, c.source_scan_id) < (excluded.source_updated_at, excluded.source_scan_id)
"#;

/// Every staged tag into the dictionary (as [`MERGE_TAGS`]).
pub const FOLD_TAGS: &str = "
insert into tags (name)
select distinct b.name from bulk_tags b
where b.name is not null and not exists (select 1 from tags e where e.name = b.name)
order by 1
on conflict (name) do nothing
";

/// The staged content folded per key, as the writer's fold does it for a page, in one sort
/// of the staged live records by key and version: the staged rows that lose (`t`, their
/// `ctid` in `bulk_content`) into `bulk_losers`, and into `bulk_fold` each key whose newest
/// tombstone wins, with its winning live row where it has one (`t`) and a fresh content id
/// where it has none (ties by scan id, byte order). Every staged live row not in
/// `bulk_losers` is then its key's winner, with the content id it drew when it was staged.
///
/// Only keys, versions and row addresses are sorted (a fifth of the rows' width: the sort
/// stays in memory): sorting the whole staged rows spilled half a gigabyte to disk per
/// million records. The sequence is looked up once (a lookup per row cost 1.7 s per million
/// rows). Tables, not temporary ones: the edges are written from them on a second
/// connection; analyzed, so that the statements below hash them, not the staging table.
pub const PICK_WINNERS: &str = r#"
truncate bulk_fold, bulk_losers;
with live as materialized (
    select ctid as t, platform, external_id, source_updated_at, source_scan_id,
           row_number() over (partition by external_id collate "C", platform collate "C"
                              order by source_updated_at desc, source_scan_id desc) as rank
    from bulk_content where source_updated_at is not null
), lost as (
    insert into bulk_losers select t from live where rank > 1
), tomb as (
    select distinct on (external_id collate "C", platform collate "C")
           platform, external_id, deleted_at, deleted_scan_id, removed_at
    from bulk_content where deleted_at is not null
    order by external_id collate "C", platform collate "C", deleted_at desc, deleted_scan_id desc
)
insert into bulk_fold
select case when l.t is null then nextval((select pg_get_serial_sequence('content', 'id'))::regclass) end,
       l.t, t.platform, t.external_id, t.deleted_at, t.deleted_scan_id, t.removed_at
from tomb t
left join (select * from live where rank = 1) l
       on l.external_id collate "C" = t.external_id collate "C" and l.platform collate "C" = t.platform collate "C"
where l.t is null
   or (t.deleted_at, t.deleted_scan_id collate "C") > (l.source_updated_at, l.source_scan_id collate "C");
analyze bulk_fold, bulk_losers
"#;

/// Whether the staged row `b` is its key's winning live row ([`PICK_WINNERS`]): the
/// condition of the fold's statements below.
macro_rules! staged_winner {
    () => {
        "b.source_updated_at is not null and not exists (select 1 from bulk_losers l where l.t = b.ctid)"
    };
}

/// The fold's winners ([`PICK_WINNERS`]) with their staged columns, in the staging table's
/// column order: the rows the writer's own merge statements take, put in `stage_rows`.
pub const STAGE_BULK_WINNERS: &str = concat!(
    "
insert into stage_rows
select b.platform, b.external_id, b.source_updated_at, b.source_scan_id, b.url, b.caption,
       b.view_count, b.like_count, b.comment_count, b.share_count, b.posted_at, b.metadata::jsonb,
       b.extra::jsonb, b.creator_external_id, b.community_external_id, b.tags, w.deleted_at,
       w.deleted_scan_id, w.removed_at
from bulk_content b left join bulk_fold w on w.t = b.ctid
where ",
    staged_winner!(),
    "
union all
select w.platform, w.external_id, null, null, null, null, null, null, null, null, null, null, null,
       null, null, null, w.deleted_at, w.deleted_scan_id, w.removed_at
from bulk_fold w where w.t is null
"
);

/// Into an empty `content` (its keys off): every winning staged row ([`PICK_WINNERS`]) with
/// the id it drew, read in one pass over the staging table, and its creator's and
/// community's ids by key; then each key that has only tombstones. As the merges would
/// leave them.
pub const FOLD_INSERT_CONTENT: &str = concat!(
    "
insert into content (id, platform, external_id, url, caption, creator_id, community_id,
    view_count, like_count, comment_count, share_count, posted_at, source_updated_at,
    source_scan_id, metadata, extra, deleted_at, deleted_scan_id, removed_at)
overriding system value
select b.id, b.platform, b.external_id, b.url, b.caption, cr.id, cm.id,
       b.view_count, b.like_count, b.comment_count, b.share_count, b.posted_at, b.source_updated_at,
       b.source_scan_id, b.metadata::jsonb, b.extra::jsonb, w.deleted_at, w.deleted_scan_id, w.removed_at
from bulk_content b
left join bulk_fold w on w.t = b.ctid
left join creators cr on cr.platform = b.platform and cr.external_id = b.creator_external_id
left join communities cm on cm.platform = b.platform and cm.external_id = b.community_external_id
where ",
    staged_winner!(),
    "
union all
select w.id, w.platform, w.external_id, null, null, null, null, null, null, null, null, null, null,
       null, null, null, w.deleted_at, w.deleted_scan_id, w.removed_at
from bulk_fold w where w.t is null
"
);

/// The edges of the winning staged rows: their tags (a record's tags are a set already:
/// the parser folds duplicates).
pub const FOLD_INSERT_EDGES: &str = concat!(
    "
insert into content_tags (content_id, tag_id)
select b.id, t.id
from bulk_content b
cross join lateral unnest(b.tags) as n(name) join tags t on t.name = n.name
where ",
    staged_winner!(),
    "\n"
);

/// Edges whose content row does not exist: left by a fold killed after its edges were
/// committed and before its content was (a foreign key, when on, forbids them).
pub const DELETE_ORPHAN_EDGES: &str =
    "delete from content_tags ct where not exists (select 1 from content c where c.id = ct.content_id)";

/// The rows of the staging table that differ from the store (`scansync verify`), as
/// (platform, external id, [`Verdict`](super::postgres::Verdict) number): 0 the store is
/// ahead, 2 diverged, 3 stale, 4 missing; a row the store holds alike is not returned.
///
/// A row's version is its newest of all: the tombstone where it has one (the fold keeps one
/// only while it is newer than the live record, and the store sets `deleted_at` exactly
/// then), else its live version. At the same version the values are compared: for a
/// tombstone its own columns (the live columns of a deleted row are its last live values,
/// which may come from outside the range compared), for a live row every column the writer
/// writes, its creator's and community's keys, and its tags as a sorted set. They are
/// compared as typed values, one row value against the other (`is not distinct from`): the
/// staging table has the columns' types, so numbers, instants and `jsonb` compare as values. (Hashing both sides' text, `md5(row(…)::text)`, found the same and cost a
/// quarter more: measured 66 ms against 49 ms a page of 2000 rows.) A row's tag names are
/// looked up one index probe each: as a join, the planner hash-joined the whole `tags` table
/// for every row (measured: 1.3 ms a row at 10k tags, 3.4 s a page of 2000).
pub const COMPARE_CONTENT: &str = r#"
select platform, external_id, verdict from (
    select s.platform, s.external_id,
           case
             when c.id is null then 4
             when (s.v_at, s.v_scan collate "C") > (v.at, v.scan collate "C") then 3
             when (s.v_at, s.v_scan collate "C") < (v.at, v.scan collate "C") then 0
             when s.deleted_at is not null then
               case when row(s.deleted_at, s.deleted_scan_id, s.removed_at)
                         is not distinct from row(c.deleted_at, c.deleted_scan_id, c.removed_at) then 1 else 2 end
             when row(s.url, s.caption, s.view_count, s.like_count, s.comment_count, s.share_count,
                          s.posted_at, s.metadata, s.extra, s.creator_external_id,
                          s.community_external_id,
                          array(select distinct n from unnest(s.tags) n order by 1))
                is not distinct from row(c.url, c.caption, c.view_count, c.like_count, c.comment_count, c.share_count,
                          c.posted_at, c.metadata, c.extra,
                          (select e.external_id from creators e where e.id = c.creator_id),
                          (select e.external_id from communities e where e.id = c.community_id),
                          array(select (select t.name from tags t where t.id = ct.tag_id) n
                                from content_tags ct where ct.content_id = c.id order by 1))
               then 1
             else 2
           end as verdict
    from (select st.*,
                 coalesce(st.deleted_at, st.source_updated_at) as v_at,
                 case when st.deleted_at is not null then st.deleted_scan_id else st.source_scan_id end as v_scan
          from stage_rows st) s
    -- One index probe per staged row (`limit 1` keeps the subquery from being flattened):
    -- as a join, the planner, which has no statistics for the staging table, hash-joined
    -- the whole content table and spilled it to disk on every page (measured at 632k rows).
    left join lateral (
        select * from content e where e.platform = s.platform and e.external_id = s.external_id limit 1
    ) c on true
    cross join lateral (
        select coalesce(c.deleted_at, c.source_updated_at) as at,
               case when c.deleted_at is not null then c.deleted_scan_id else c.source_scan_id end as scan
    ) v
) compared
where verdict <> 1
"#;

/// Creators, as [`COMPARE_CONTENT`] (the parameters of [`UPSERT_CREATORS`]), as (0-based
/// index, verdict): the values compared are handle, display name, follower count and
/// whether the account is deleted.
pub const COMPARE_CREATORS: &str = r#"
select ord - 1, verdict from (
    select s.ord,
           case
             when c.id is null then 4
             when (s.at::timestamptz, s.scan collate "C") > (c.source_updated_at, c.source_scan_id) then 3
             when (s.at::timestamptz, s.scan collate "C") < (c.source_updated_at, c.source_scan_id) then 0
             when row(s.handle, s.display_name, s.follower_count::numeric, s.deleted)
                is not distinct from row(c.handle, c.display_name, c.follower_count, c.deleted_at is not null) then 1
             else 2
           end as verdict
    from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::bool[]) with ordinality
         as s(platform, external_id, at, scan, handle, display_name, follower_count, deleted, ord)
    left join lateral (
        select * from creators e where e.platform = s.platform and e.external_id = s.external_id limit 1
    ) c on true
) compared
where verdict <> 1
"#;

/// Communities, as [`COMPARE_CREATORS`]: the value compared is the name.
pub const COMPARE_COMMUNITIES: &str = r#"
select ord - 1, verdict from (
    select s.ord,
           case
             when c.id is null then 4
             when (s.at::timestamptz, s.scan collate "C") > (c.source_updated_at, c.source_scan_id) then 3
             when (s.at::timestamptz, s.scan collate "C") < (c.source_updated_at, c.source_scan_id) then 0
             when s.name is not distinct from c.name then 1
             else 2
           end as verdict
    from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::bool[]) with ordinality
         as s(platform, external_id, at, scan, name, unused_a, unused_b, unused_c, ord)
    left join lateral (
        select * from communities e where e.platform = s.platform and e.external_id = s.external_id limit 1
    ) c on true
) compared
where verdict <> 1
"#;

/// `verify --repair`, before the records are written: each diverged content row ($1
/// platform, $2 external id, $3/$4 the live version, $5/$6 the tombstone version the
/// source and the store share) has that version moved back by one microsecond, where the
/// store still holds it, so the merges take the source's record as newer. Moving a version
/// back never hides a newer one: the guard is equality with the version compared.
pub const DEMOTE_CONTENT: &str = r#"
update content c set
    source_updated_at = case when s.tomb_at is null then c.source_updated_at - interval '1 microsecond'
                             else c.source_updated_at end,
    deleted_at = case when s.tomb_at is not null then c.deleted_at - interval '1 microsecond'
                      else c.deleted_at end
from unnest($1::text[], $2::text[], $3::text[]::timestamptz[], $4::text[],
            $5::text[]::timestamptz[], $6::text[])
     as s(platform, external_id, live_at, live_scan, tomb_at, tomb_scan)
where c.platform = s.platform and c.external_id = s.external_id
  and ((s.tomb_at is null and c.deleted_at is null
        and (c.source_updated_at, c.source_scan_id) = (s.live_at, s.live_scan collate "C"))
    or (s.tomb_at is not null
        and (c.deleted_at, c.deleted_scan_id) = (s.tomb_at, s.tomb_scan collate "C")))
"#;

/// As [`DEMOTE_CONTENT`], for creators ($1 platform, $2 external id, $3/$4 version).
pub static DEMOTE_CREATORS: LazyLock<String> = LazyLock::new(|| demote_entity("creators"));

/// As [`DEMOTE_CONTENT`], for communities.
pub static DEMOTE_COMMUNITIES: LazyLock<String> = LazyLock::new(|| demote_entity("communities"));

fn demote_entity(table: &str) -> String {
    format!(
        r#"
update {table} c set source_updated_at = c.source_updated_at - interval '1 microsecond'
from unnest($1::text[], $2::text[], $3::text[]::timestamptz[], $4::text[]) as s(platform, external_id, at, scan)
where c.platform = s.platform and c.external_id = s.external_id
  and (c.source_updated_at, c.source_scan_id) = (s.at, s.scan collate "C")
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_row_tag_is_in_the_sql_that_answers_with_it() {
        for t in FreshTable::ALL {
            let tag = t as i32;
            assert!(
                FRESH_ROWS.contains(&format!("select {tag}, ")) || FRESH_ROWS.contains(&format!(" {tag} ")),
                "{t:?}"
            );
            assert_eq!(FreshTable::of(tag), Some(t));
        }
        for t in [EntityTable::Creators, EntityTable::Communities, EntityTable::Tags] {
            assert!(ENTITY_IDS.contains(&format!("select {}, ", t as i32)), "{t:?}");
            assert_eq!(EntityTable::of(t as i32), Some(t));
        }
        assert_eq!(FreshTable::of(9), None);
    }
}
