//! Records: raw DynamoDB items in, uniform [`Record`]s or quarantine [`Reject`]s out.
//!
//! Runs on the rayon pool, one page at a time ([`parse_page`]); it never blocks on I/O.
//! Every field-name variant of the upstream contract (docs/contract.md) is normalised here, and
//! every known kind of dirt (docs/contract.md) is repaired by a named [`Rule`] and counted, or the
//! record is rejected with a [`RejectReason`]. Nothing is dropped silently.
//!
//! Fields missing at the top level are looked up in the metadata, at these paths:
//! `platform`; content id `id` | `contentId` | `postId`; url `url` | `permalink`; caption
//! `caption` | `text` | `description`; creator `author` | `creator` (a map of `id`, `handle` |
//! `username`, `displayName` | `name`, `followers` | `followerCount`); community `community`;
//! stats `stats` | `statistics`; `postedAt` | `createdAt` | `created_at`; tags `tags` |
//! `hashtags`.

use crate::attr::{write_item_dynamodb_json, Attr, Item};
use crate::json::{
    attr_to_json, is_json, jsonb_text, numbers_fit_numeric, parse_json_text, repair_json_text, strip_nul,
    Parsed,
};
use crate::number::{id_text, normalize_decimal};
use crate::tags;
use crate::text::clean_text;
use crate::time::{Day, Timestamp};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// One scan record, cleaned and in the canonical shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The DynamoDB key of the scan event; breaks ties between equal `updated_at`.
    pub scan_id: String,
    /// The UTC day partition the record was read from.
    pub partition: String,
    /// When the record last changed upstream.
    pub updated_at: Timestamp,
    /// Platform, lowercase.
    pub platform: String,
    /// The platform's post id, as exact text.
    pub external_id: String,
    /// A tombstone: the post (or account) is gone.
    pub deleted: bool,
    /// The post's URL.
    pub url: Option<String>,
    /// The caption text.
    pub caption: Option<String>,
    /// The author, if known.
    pub creator: Option<Creator>,
    /// The community (subreddit, channel, group), if known.
    pub community: Option<Community>,
    /// Normalised, de-duplicated tags.
    pub tags: Vec<String>,
    /// Engagement counts as exact decimals: views, likes, comments, shares.
    pub stats: [Option<String>; 4],
    /// Publication time.
    pub posted_at: Option<Timestamp>,
    /// The metadata blob as `jsonb`-safe JSON text.
    pub metadata: Option<String>,
    /// Drifted attributes by name, as a `jsonb`-safe JSON object.
    pub extra: Option<String>,
}

/// A creator as one record describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Creator {
    /// The platform's creator id; if absent, the handle lowercased.
    pub external_id: String,
    /// The handle.
    pub handle: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// Follower count, exact.
    pub followers: Option<String>,
    /// The creator map says the account is gone.
    pub deleted: bool,
}

/// A community as one record describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Community {
    /// The community id; if absent, the name lowercased.
    pub external_id: String,
    /// The community name.
    pub name: Option<String>,
}

/// Why a record could not be repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// An export line that is not JSON at all.
    NotJson,
    /// A JSON line whose `Item` is not a DynamoDB map.
    NotAMap,
    /// No content id anywhere (top level or metadata).
    MissingContentId,
    /// No platform anywhere.
    MissingPlatform,
    /// No `updatedAt`: the record cannot be ordered against its other versions.
    MissingUpdatedAt,
    /// An `updatedAt` that is not a timestamp.
    UnparseableUpdatedAt,
}

impl RejectReason {
    /// Returns the reason code stored in `quarantine.reason`.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::NotJson => "not_json",
            RejectReason::NotAMap => "not_a_map",
            RejectReason::MissingContentId => "missing_content_id",
            RejectReason::MissingPlatform => "missing_platform",
            RejectReason::MissingUpdatedAt => "missing_updated_at",
            RejectReason::UnparseableUpdatedAt => "unparseable_updated_at",
        }
    }

    /// Every reason, in code order.
    pub const ALL: [RejectReason; 6] = [
        RejectReason::NotJson,
        RejectReason::NotAMap,
        RejectReason::MissingContentId,
        RejectReason::MissingPlatform,
        RejectReason::MissingUpdatedAt,
        RejectReason::UnparseableUpdatedAt,
    ];

    /// Says, for the docs, when a record is rejected for this reason.
    pub fn description(self) -> &'static str {
        match self {
            RejectReason::NotJson => "an export line that is not JSON at all (a truncated or binary line)",
            RejectReason::NotAMap => "a JSON line whose `Item` is not a DynamoDB map",
            RejectReason::MissingContentId => {
                "no content id anywhere: not `contentId`, `content_id` or `postId`, nor `id`/`contentId`/`postId` in the metadata"
            }
            RejectReason::MissingPlatform => "no platform, neither at the top level nor in the metadata",
            RejectReason::MissingUpdatedAt => "no `updatedAt`: the record cannot be ordered against its other versions",
            RejectReason::UnparseableUpdatedAt => "an `updatedAt` that is not a timestamp in any accepted form",
        }
    }

    /// Tells whether the input was unreadable (not a record at all) rather than a record
    /// beyond repair: many of these in one unit mean a broken file, not dirty data.
    pub fn is_unreadable(self) -> bool {
        matches!(self, RejectReason::NotJson | RejectReason::NotAMap)
    }
}

/// A record beyond repair, on its way to the quarantine table.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// Why.
    pub reason: RejectReason,
    /// The scan id, when one could be read.
    pub scan_id: Option<String>,
    /// The partition the record came from.
    pub partition: String,
    /// The raw record as text (DynamoDB JSON, or the export line as read).
    pub raw: String,
    /// The record's position in its page (a source maps it back to, e.g., a line number).
    pub index: usize,
    /// Where it was read from: the page's unit (a partition, an export file), which a
    /// source may make more precise (`file.json.gz:17`).
    pub origin: String,
}

/// The named repair rules; each firing is counted per page and per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Rule {
    /// A lone surrogate or invalid UTF-8 in a string became U+FFFD.
    TextSurrogate,
    /// Control characters were removed from a string.
    TextControl,
    /// A string was normalised to NFC.
    TextNfc,
    /// A count that is not a number became null.
    NumberInvalid,
    /// A timestamp (other than `updatedAt`) that does not parse became null.
    TimestampInvalid,
    /// Metadata text was repaired (BOM, NUL, surrogates, control characters).
    MetadataRepaired,
    /// Metadata was double (or deeper) encoded and unwrapped.
    MetadataUnwrapped,
    /// Metadata text was not JSON even after repair: stored as null.
    MetadataInvalid,
    /// Metadata parsed but was still unfit for `jsonb`: stored as null.
    MetadataUnfit,
    /// A field missing at the top level was taken from the metadata.
    MetadataFallback,
    /// A known attribute arrived with another type and was coerced.
    TypeCoerced,
}

impl Rule {
    /// Every rule, in counter order.
    pub const ALL: [Rule; 11] = [
        Rule::TextSurrogate,
        Rule::TextControl,
        Rule::TextNfc,
        Rule::NumberInvalid,
        Rule::TimestampInvalid,
        Rule::MetadataRepaired,
        Rule::MetadataUnwrapped,
        Rule::MetadataInvalid,
        Rule::MetadataUnfit,
        Rule::MetadataFallback,
        Rule::TypeCoerced,
    ];

    /// Returns the rule's name as reported in summaries and the run ledger.
    pub fn name(self) -> &'static str {
        match self {
            Rule::TextSurrogate => "text_surrogate",
            Rule::TextControl => "text_control_chars",
            Rule::TextNfc => "text_nfc",
            Rule::NumberInvalid => "number_invalid",
            Rule::TimestampInvalid => "timestamp_invalid",
            Rule::MetadataRepaired => "metadata_repaired",
            Rule::MetadataUnwrapped => "metadata_unwrapped",
            Rule::MetadataInvalid => "metadata_invalid",
            Rule::MetadataUnfit => "metadata_unfit",
            Rule::MetadataFallback => "metadata_fallback",
            Rule::TypeCoerced => "type_coerced",
        }
    }

    /// Says, for the docs, what the rule repairs and how.
    pub fn description(self) -> &'static str {
        match self {
            Rule::TextSurrogate => "a lone surrogate (raw or as a `\\uD83D` escape) or invalid UTF-8 in a string becomes U+FFFD",
            Rule::TextControl => "control characters are removed from a string (`\\n` and `\\t` are kept)",
            Rule::TextNfc => "a string is normalised to Unicode NFC",
            Rule::NumberInvalid => "a count (`stats`, followers) that is not a number becomes null",
            Rule::TimestampInvalid => "a timestamp other than `updatedAt` (e.g. `postedAt`) that does not parse becomes null",
            Rule::MetadataRepaired => "metadata text is repaired before parsing: BOM stripped, NUL bytes and `\\u0000` removed, lone surrogate escapes replaced",
            Rule::MetadataUnwrapped => "metadata that is JSON encoded twice (or deeper, bounded) is unwrapped",
            Rule::MetadataInvalid => "metadata text that is not JSON even after repair is stored as null",
            Rule::MetadataUnfit => "metadata that parsed but is still unfit for `jsonb` is stored as null",
            Rule::MetadataFallback => "a field missing at the top level (platform, id, url, caption, …) is taken from the metadata",
            Rule::TypeCoerced => "a known attribute that arrives with another DynamoDB type is coerced where that is unambiguous",
        }
    }
}

/// How often each [`Rule`] fired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repairs(pub [u64; Rule::ALL.len()]);

impl Repairs {
    /// Counts one firing of `rule`.
    pub fn add(&mut self, rule: Rule) {
        self.0[rule as usize] += 1;
    }

    /// Adds another set of counts to this one.
    pub fn merge(&mut self, other: &Repairs) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Returns the count of `rule`.
    pub fn get(&self, rule: Rule) -> u64 {
        self.0[rule as usize]
    }

    /// Returns the rules that fired, with their counts.
    pub fn fired(&self) -> impl Iterator<Item = (Rule, u64)> + '_ {
        Rule::ALL.iter().map(|r| (*r, self.get(*r))).filter(|(_, n)| *n > 0)
    }
}

/// Drift observed in a page: (attribute, observed DynamoDB type) → how many records.
pub type Drift = HashMap<(String, &'static str), u64>;

/// One raw input record as a source delivers it.
#[derive(Debug, Clone)]
pub enum RawRecord {
    /// A DynamoDB item.
    Item(Item),
    /// An export line that could not be read as an item.
    Unreadable {
        /// Why.
        reason: RejectReason,
        /// The line as read (invalid UTF-8 replaced).
        raw: String,
    },
}

/// A page of parsed records, ready for the writer.
#[derive(Debug, Default)]
pub struct ParsedPage {
    /// The partition (or export file) the page came from.
    pub partition: String,
    /// Records inside the window.
    pub records: Vec<Record>,
    /// Records beyond repair.
    pub rejects: Vec<Reject>,
    /// Repairs made.
    pub repairs: Repairs,
    /// Drifted attributes seen.
    pub drift: Drift,
    /// Raw records read.
    pub read: u64,
    /// Records outside the run's window (already synced by an earlier run, or outside a
    /// backfill's days).
    pub skipped: u64,
    /// How the records' `updatedAt` stamps are written, by form.
    pub stamps: StampCounts,
}

/// Records read per `updatedAt` form.
pub type StampCounts = std::collections::BTreeMap<crate::time::StampForm, u64>;

/// Which parsed records a run keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Filter {
    /// Keep only records with `updatedAt` strictly after this instant (the exact incremental
    /// filter); `None` keeps every record.
    pub after: Option<Timestamp>,
    /// Keep only records whose partition day lies in this inclusive range (backfill of an
    /// export, which is not indexed by day).
    pub days: Option<(Day, Day)>,
}

impl Filter {
    fn keeps(&self, r: &Record) -> bool {
        let after_ok = self.after.is_none_or(|l| r.updated_at > l);
        let day_ok = self.days.is_none_or(|(from, to)| {
            let d = Day::parse(&r.partition).unwrap_or_else(|| r.updated_at.day());
            from <= d && d <= to
        });
        after_ok && day_ok
    }
}

/// Parses one page and keeps the records `filter` lets through.
pub fn parse_page(partition: &str, raw: Vec<RawRecord>, filter: &Filter) -> ParsedPage {
    let mut page =
        ParsedPage { partition: partition.to_owned(), read: raw.len() as u64, ..ParsedPage::default() };
    for (index, r) in raw.into_iter().enumerate() {
        match r {
            RawRecord::Unreadable { reason, raw } => page.rejects.push(Reject {
                reason,
                scan_id: None,
                partition: partition.to_owned(),
                raw,
                index,
                origin: partition.to_owned(),
            }),
            RawRecord::Item(item) => {
                if let Some(Attr::S(u) | Attr::N(u)) = item.get("updatedAt") {
                    if let Some(form) = crate::time::StampForm::of(u) {
                        *page.stamps.entry(form).or_default() += 1;
                    }
                }
                match parse_item(&item, partition, &mut page.repairs, &mut page.drift) {
                    Ok(rec) if !filter.keeps(&rec) => page.skipped += 1,
                    Ok(rec) => page.records.push(rec),
                    Err(reason) => page.rejects.push(reject_item(&item, reason, partition, index)),
                }
            }
        }
    }
    page
}

fn reject_item(item: &Item, reason: RejectReason, partition: &str, index: usize) -> Reject {
    let mut raw = String::new();
    write_item_dynamodb_json(item, &mut raw);
    let text_of = |name: &str| match item.get(name) {
        Some(Attr::S(s)) | Some(Attr::N(s)) => clean_text(s).0,
        _ => None,
    };
    Reject {
        reason,
        scan_id: text_of("scanId"),
        // The record's own partition when it has one; else where it was read from.
        partition: text_of("datePartition").unwrap_or_else(|| partition.to_owned()),
        raw,
        index,
        origin: partition.to_owned(),
    }
}

/// Attribute names the parser understands; anything else is drift and lands in `extra`.
const KNOWN: &[&str] = &[
    "scanId",
    "datePartition",
    "updatedAt",
    "contentId",
    "content_id",
    "postId",
    "platform",
    "contentUrl",
    "url",
    "creator",
    "creatorId",
    "creatorHandle",
    "creatorDisplayName",
    "creatorFollowers",
    "community",
    "communityId",
    "communityName",
    "tags",
    "stats",
    "caption",
    "metadata",
    "postedAt",
    "deleted",
];

/// Per-record state: where repairs are counted and drift is collected.
struct Ctx<'a> {
    repairs: &'a mut Repairs,
    drift: &'a mut Drift,
    extra: Map<String, Value>,
}

impl Ctx<'_> {
    fn text(&mut self, s: &str) -> Option<String> {
        let (out, r) = clean_text(s);
        if r.surrogates {
            self.repairs.add(Rule::TextSurrogate);
        }
        if r.control {
            self.repairs.add(Rule::TextControl);
        }
        if r.nfc {
            self.repairs.add(Rule::TextNfc);
        }
        out
    }

    /// Keeps a known attribute that arrived with a type we cannot coerce.
    fn drifted(&mut self, name: &str, a: &Attr) {
        *self.drift.entry((name.to_owned(), a.type_name())).or_default() += 1;
        self.extra.insert(name.to_owned(), attr_to_json(a));
    }

    /// Notes a known attribute that arrived with an undocumented type but could be
    /// coerced: counted as a repair and recorded in the drift ledger.
    fn coerced(&mut self, name: &str, a: &Attr) {
        self.repairs.add(Rule::TypeCoerced);
        *self.drift.entry((name.to_owned(), a.type_name())).or_default() += 1;
    }

    /// Reads a string-like attribute: S as is, N coerced (unambiguous), others drift.
    fn text_attr(&mut self, name: &str, a: &Attr) -> Option<String> {
        match a {
            Attr::S(s) => self.text(s),
            Attr::N(n) => {
                self.coerced(name, a);
                normalize_decimal(n)
            }
            Attr::Null => None,
            other => {
                self.drifted(name, other);
                None
            }
        }
    }

    /// Reads an id: S cleaned, N as exact integer text.
    fn id_attr(&mut self, name: &str, a: &Attr) -> Option<String> {
        match a {
            Attr::N(n) => id_text(n),
            _ => self.text_attr(name, a),
        }
    }

    /// Reads a count: N or numeric S, exact; anything else null and counted.
    fn count_attr(&mut self, a: &Attr) -> Option<String> {
        let out = match a {
            Attr::N(n) | Attr::S(n) => normalize_decimal(n),
            Attr::Null => return None,
            _ => None,
        };
        if out.is_none() {
            self.repairs.add(Rule::NumberInvalid);
        }
        out
    }

    /// Reads a timestamp: ISO string, epoch seconds or millis (N or S); else null, counted.
    fn time_attr(&mut self, a: &Attr) -> Option<Timestamp> {
        let out = match a {
            Attr::S(s) | Attr::N(s) => Timestamp::parse(s),
            Attr::Null => return None,
            _ => None,
        };
        if out.is_none() {
            self.repairs.add(Rule::TimestampInvalid);
        }
        out
    }

    fn flag_attr(&mut self, name: &str, a: &Attr) -> bool {
        match a {
            Attr::Bool(b) => *b,
            Attr::Null => false,
            Attr::S(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                self.coerced(name, a);
                s.eq_ignore_ascii_case("true")
            }
            Attr::N(n) if n == "0" || n == "1" => {
                self.coerced(name, a);
                n == "1"
            }
            other => {
                self.drifted(name, other);
                false
            }
        }
    }
}

/// Returns the first present, non-NULL attribute among `names`, with the name found.
fn get<'a>(item: &'a Item, names: &[&'static str]) -> Option<(&'static str, &'a Attr)> {
    names.iter().find_map(|n| item.get(*n).filter(|a| **a != Attr::Null).map(|a| (*n, a)))
}

/// Converts plain JSON (from metadata) into an attribute, so fallbacks share the readers.
fn json_to_attr(v: &Value) -> Attr {
    match v {
        Value::Null => Attr::Null,
        Value::Bool(b) => Attr::Bool(*b),
        Value::Number(n) => Attr::N(n.to_string()),
        Value::String(s) => Attr::S(s.clone()),
        Value::Array(xs) => Attr::L(xs.iter().map(json_to_attr).collect()),
        Value::Object(m) => Attr::M(m.iter().map(|(k, v)| (k.clone(), json_to_attr(v))).collect()),
    }
}

/// A record's metadata: jsonb-ready text, and the JSON tree, built only when needed.
///
/// Well-formed metadata (the common case) is validated without building a tree and kept
/// as its (repaired) text; the tree is parsed lazily, only if a field missing at the top
/// level must be looked up in it.
struct Meta {
    /// The text for the `metadata` column, when already known to be fit for `jsonb`.
    text: Option<String>,
    tree: std::cell::OnceCell<Option<Value>>,
}

impl Meta {
    fn tree(&self) -> Option<&Value> {
        self.tree.get_or_init(|| self.text.as_deref().and_then(|t| serde_json::from_str(t).ok())).as_ref()
    }
}

/// Looks `names` up in the metadata object, counting a hit as a fallback.
fn meta_get(meta: &Meta, names: &[&str], repairs: &mut Repairs) -> Option<Attr> {
    let obj = meta.tree()?.as_object()?;
    let v = names.iter().find_map(|n| obj.get(*n).filter(|v| !v.is_null()))?;
    repairs.add(Rule::MetadataFallback);
    Some(json_to_attr(v))
}

/// Parses the metadata attribute.
fn parse_metadata(a: Option<&Attr>, repairs: &mut Repairs) -> Meta {
    let tree = |v: Option<Value>| Meta { text: None, tree: v.into() };
    if let Some(Attr::S(s)) = a {
        // Fast path: an object or array that is valid JSON once repaired, holds no NUL
        // (the repair removed them) and no number outside `numeric`: keep its text.
        let (fixed, repaired) = repair_json_text(s);
        let t = fixed.trim_start();
        if (t.starts_with('{') || t.starts_with('[')) && numbers_fit_numeric(t) && is_json(t) {
            if repaired {
                repairs.add(Rule::MetadataRepaired);
            }
            return Meta { text: Some(fixed), tree: std::cell::OnceCell::new() };
        }
    }
    tree(parse_metadata_tree(a, repairs))
}

/// The general path: parses (unwrapping encodings) into a tree with NUL removed.
fn parse_metadata_tree(a: Option<&Attr>, repairs: &mut Repairs) -> Option<Value> {
    let mut value = match a? {
        Attr::Null => return None,
        Attr::S(s) => match parse_json_text(s) {
            Parsed::Value { value, layers, repaired } => {
                if repaired {
                    repairs.add(Rule::MetadataRepaired);
                }
                if layers > 0 {
                    repairs.add(Rule::MetadataUnwrapped);
                }
                value
            }
            Parsed::Invalid => {
                repairs.add(Rule::MetadataInvalid);
                return None;
            }
        },
        other => attr_to_json(other),
    };
    if strip_nul(&mut value) {
        repairs.add(Rule::MetadataRepaired);
    }
    Some(value)
}

/// Parses one item into a record, or says why it is beyond repair.
pub fn parse_item(
    item: &Item,
    partition: &str,
    repairs: &mut Repairs,
    drift: &mut Drift,
) -> Result<Record, RejectReason> {
    let meta = parse_metadata(item.get("metadata"), repairs);
    let mut cx = Ctx { repairs, drift, extra: Map::new() };
    let meta_ref = &meta;

    let updated_at = match item.get("updatedAt") {
        None | Some(Attr::Null) => return Err(RejectReason::MissingUpdatedAt),
        Some(Attr::S(s)) | Some(Attr::N(s)) => {
            Timestamp::parse(s).ok_or(RejectReason::UnparseableUpdatedAt)?
        }
        Some(_) => return Err(RejectReason::UnparseableUpdatedAt),
    };

    let platform = match get(item, &["platform"]) {
        Some((n, a)) => cx.text_attr(n, a),
        None => None,
    }
    .or_else(|| {
        let a = meta_get(meta_ref, &["platform"], cx.repairs)?;
        cx.text_attr("metadata.platform", &a)
    })
    .map(|p| p.to_lowercase())
    .ok_or(RejectReason::MissingPlatform)?;

    let external_id = match get(item, &["contentId", "content_id", "postId"]) {
        Some((n, a)) => cx.id_attr(n, a),
        None => None,
    }
    .or_else(|| {
        let a = meta_get(meta_ref, &["id", "contentId", "postId"], cx.repairs)?;
        cx.id_attr("metadata.id", &a)
    })
    .ok_or(RejectReason::MissingContentId)?;

    let scan_id = match item.get("scanId") {
        Some(a) => cx.id_attr("scanId", a),
        None => None,
    }
    .unwrap_or_default();
    let partition = match item.get("datePartition") {
        Some(Attr::S(s)) => cx.text(s),
        _ => None,
    }
    .unwrap_or_else(|| {
        if partition.is_empty() {
            updated_at.day().to_string()
        } else {
            partition.to_owned()
        }
    });

    let deleted = item.get("deleted").is_some_and(|a| cx.flag_attr("deleted", a));

    let field = |cx: &mut Ctx, names: &[&'static str], meta_names: &[&str]| match get(item, names) {
        Some((n, a)) => cx.text_attr(n, a),
        None => meta_get(meta_ref, meta_names, cx.repairs).and_then(|a| cx.text_attr(names[0], &a)),
    };
    let url = field(&mut cx, &["contentUrl", "url"], &["url", "permalink"]);
    let caption = field(&mut cx, &["caption"], &["caption", "text", "description"]);

    let creator = parse_creator(item, meta_ref, &mut cx);
    let community = parse_community(item, meta_ref, &mut cx);

    let tags = match get(item, &["tags"]) {
        Some((n, a)) => tags::parse_tags(a).unwrap_or_else(|| {
            cx.drifted(n, a);
            Vec::new()
        }),
        None => meta_get(meta_ref, &["tags", "hashtags"], cx.repairs)
            .and_then(|a| tags::parse_tags(&a))
            .unwrap_or_default(),
    };

    let stats = parse_stats(item, meta_ref, &mut cx);

    let posted_at = match get(item, &["postedAt"]) {
        Some((_, a)) => cx.time_attr(a),
        None => meta_get(meta_ref, &["postedAt", "createdAt", "created_at"], cx.repairs)
            .and_then(|a| cx.time_attr(&a)),
    };

    for (name, a) in item {
        if !KNOWN.contains(&name.as_str()) {
            cx.drifted(name, a);
        }
    }

    let metadata = match meta.text {
        Some(text) => Some(text),
        None => meta.tree.into_inner().flatten().and_then(|v| {
            let text = jsonb_text(&v);
            if text.is_none() {
                cx.repairs.add(Rule::MetadataUnfit);
            }
            text
        }),
    };
    let extra = if cx.extra.is_empty() {
        None
    } else {
        let mut v = Value::Object(std::mem::take(&mut cx.extra));
        strip_nul(&mut v);
        jsonb_text(&v).or_else(|| {
            cx.repairs.add(Rule::MetadataUnfit);
            None
        })
    };

    Ok(Record {
        scan_id,
        partition,
        updated_at,
        platform,
        external_id,
        deleted,
        url,
        caption,
        creator,
        community,
        tags,
        stats,
        posted_at,
        metadata,
        extra,
    })
}

fn parse_creator(item: &Item, meta: &Meta, cx: &mut Ctx) -> Option<Creator> {
    let from_map = |cx: &mut Ctx, m: &Item| {
        let id = get(m, &["id", "creatorId"]).and_then(|(n, a)| cx.id_attr(n, a));
        let handle = get(m, &["handle", "username"]).and_then(|(n, a)| cx.text_attr(n, a));
        let display_name =
            get(m, &["displayName", "display_name", "name"]).and_then(|(n, a)| cx.text_attr(n, a));
        let followers = get(m, &["followers", "followerCount"]).and_then(|(_, a)| cx.count_attr(a));
        let deleted = get(m, &["deleted", "isDeleted"]).is_some_and(|(n, a)| cx.flag_attr(n, a));
        (id, handle, display_name, followers, deleted)
    };
    let (id, handle, display_name, followers, deleted) = match item.get("creator") {
        Some(Attr::M(m)) => from_map(cx, m),
        Some(a @ Attr::S(s)) if item.get("creatorId").is_none() => {
            // A bare string creator is its handle.
            cx.coerced("creator", a);
            (None, cx.text(s), None, None, false)
        }
        Some(other) if *other != Attr::Null => {
            cx.drifted("creator", other);
            (None, None, None, None, false)
        }
        _ => {
            let id = get(item, &["creatorId"]).and_then(|(n, a)| cx.id_attr(n, a));
            let handle = get(item, &["creatorHandle"]).and_then(|(n, a)| cx.text_attr(n, a));
            let display = get(item, &["creatorDisplayName"]).and_then(|(n, a)| cx.text_attr(n, a));
            let followers = get(item, &["creatorFollowers"]).and_then(|(_, a)| cx.count_attr(a));
            if id.is_some() || handle.is_some() {
                (id, handle, display, followers, false)
            } else {
                match meta_get(meta, &["author", "creator"], cx.repairs) {
                    Some(Attr::M(m)) => from_map(cx, &m),
                    _ => (None, None, None, None, false),
                }
            }
        }
    };
    let external_id = id.or_else(|| handle.as_ref().map(|h| h.to_lowercase()))?;
    Some(Creator { external_id, handle, display_name, followers, deleted })
}

fn parse_community(item: &Item, meta: &Meta, cx: &mut Ctx) -> Option<Community> {
    let from_map = |cx: &mut Ctx, m: &Item| {
        let id = get(m, &["id", "communityId"]).and_then(|(n, a)| cx.id_attr(n, a));
        let name = get(m, &["name", "communityName"]).and_then(|(n, a)| cx.text_attr(n, a));
        (id, name)
    };
    let (id, name) = match item.get("community") {
        Some(Attr::M(m)) => from_map(cx, m),
        Some(a @ Attr::S(s)) if item.get("communityId").is_none() => {
            // A bare string community is its name.
            cx.coerced("community", a);
            (None, cx.text(s))
        }
        Some(other) if *other != Attr::Null => {
            cx.drifted("community", other);
            (None, None)
        }
        _ => {
            let id = get(item, &["communityId"]).and_then(|(n, a)| cx.id_attr(n, a));
            let name = get(item, &["communityName"]).and_then(|(n, a)| cx.text_attr(n, a));
            if id.is_some() || name.is_some() {
                (id, name)
            } else {
                match meta_get(meta, &["community"], cx.repairs) {
                    Some(Attr::M(m)) => from_map(cx, &m),
                    _ => (None, None),
                }
            }
        }
    };
    let external_id = id.or_else(|| name.as_ref().map(|n| n.to_lowercase()))?;
    Some(Community { external_id, name })
}

fn parse_stats(item: &Item, meta: &Meta, cx: &mut Ctx) -> [Option<String>; 4] {
    const NAMES: [&[&str]; 4] = [
        &["views", "viewCount", "playCount"],
        &["likes", "likeCount", "diggCount"],
        &["comments", "commentCount"],
        &["shares", "shareCount"],
    ];
    let map: Option<Item> = match item.get("stats") {
        Some(Attr::M(m)) => Some(m.clone()),
        Some(Attr::S(s)) => match parse_json_text(s) {
            Parsed::Value { value: v @ Value::Object(_), .. } => {
                cx.repairs.add(Rule::TypeCoerced);
                match json_to_attr(&v) {
                    Attr::M(m) => Some(m),
                    _ => None,
                }
            }
            _ => {
                cx.drifted("stats", &Attr::S(s.clone()));
                None
            }
        },
        Some(other) if *other != Attr::Null => {
            cx.drifted("stats", other);
            None
        }
        _ => match meta_get(meta, &["stats", "statistics"], cx.repairs) {
            Some(Attr::M(m)) => Some(m),
            _ => None,
        },
    };
    let Some(map) = map else {
        return Default::default();
    };
    NAMES.map(|names| get(&map, names).and_then(|(_, a)| cx.count_attr(a)))
}

#[cfg(test)]
mod tests;
