//! Records: raw DynamoDB items in, uniform [`Record`]s or quarantine [`Reject`]s out.
//!
//! Runs on the rayon pool, one page at a time ([`parse_page`]); it never blocks on I/O.
//! Every field-name variant of the upstream contract (docs/contract.md) is normalised here, and
//! every known kind of dirt (docs/contract.md) is repaired by a named [`Rule`] and counted, or the
//! record is rejected with a [`RejectReason`]. Nothing is dropped silently.
//!
//! The names each field arrives under, at the top level and in the metadata, are in one
//! table, [`fields`]. The rest lives by concern: [`rules`] (repair rules and reject
//! reasons), `page` (a page in, counts out, the window filter), `meta` (the metadata blob and
//! its fallbacks), `entities` (creator, community, stats).

mod entities;
pub mod fields;
mod meta;
mod page;
mod rules;

pub use page::*;
pub use rules::*;

use crate::attr::{Attr, Item};
use crate::json::{attr_to_json, jsonb_text, strip_nul};
use crate::number::{id_text, normalize_decimal};
use crate::tags;
use crate::text::clean_text;
use crate::time::Timestamp;
use entities::{parse_community, parse_creator, parse_stats};
use meta::meta_get;
pub(crate) use meta::{metadata_of_text, parse_metadata};
use serde_json::{Map, Value};

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

/// Per-record state: where repairs are counted and drift is collected.
struct Ctx<'a> {
    repairs: &'a mut Repairs,
    drift: &'a mut Drift,
    extra: Map<String, Value>,
}

/// Counts what [`clean_text`] repaired in one value.
pub(crate) fn count_text_repairs(repairs: &mut Repairs, r: crate::text::TextRepairs) {
    if r.surrogates {
        repairs.add(Rule::TextSurrogate);
    }
    if r.control {
        repairs.add(Rule::TextControl);
    }
    if r.nfc {
        repairs.add(Rule::TextNfc);
    }
}

impl Ctx<'_> {
    fn text(&mut self, s: &str) -> Option<String> {
        let (out, r) = clean_text(s);
        count_text_repairs(self.repairs, r);
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

/// Parses one item into a record, or says why it is beyond repair.
pub fn parse_item(
    item: &Item,
    partition: &str,
    repairs: &mut Repairs,
    drift: &mut Drift,
) -> Result<Record, RejectReason> {
    let meta = parse_metadata(item.get(fields::METADATA.top[0]), repairs);
    let mut cx = Ctx { repairs, drift, extra: Map::new() };
    let meta_ref = &meta;

    let updated_at = match item.get(fields::UPDATED_AT.top[0]) {
        None | Some(Attr::Null) => return Err(RejectReason::MissingUpdatedAt),
        Some(Attr::S(s)) | Some(Attr::N(s)) => {
            Timestamp::parse(s).ok_or(RejectReason::UnparseableUpdatedAt)?
        }
        Some(_) => return Err(RejectReason::UnparseableUpdatedAt),
    };

    let platform = match get(item, fields::PLATFORM.top) {
        Some((n, a)) => cx.text_attr(n, a),
        None => None,
    }
    .or_else(|| {
        let a = meta_get(meta_ref, fields::PLATFORM.metadata, cx.repairs)?;
        cx.text_attr("metadata.platform", &a)
    })
    .map(|p| p.to_lowercase())
    .ok_or(RejectReason::MissingPlatform)?;

    let external_id = match get(item, fields::CONTENT_ID.top) {
        Some((n, a)) => cx.id_attr(n, a),
        None => None,
    }
    .or_else(|| {
        let a = meta_get(meta_ref, fields::CONTENT_ID.metadata, cx.repairs)?;
        cx.id_attr("metadata.id", &a)
    })
    .ok_or(RejectReason::MissingContentId)?;

    let scan_id = match item.get(fields::SCAN_ID.top[0]) {
        Some(a) => cx.id_attr("scanId", a),
        None => None,
    }
    .unwrap_or_default();
    let partition = match item.get(fields::DATE_PARTITION.top[0]) {
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

    let deleted = item.get(fields::DELETED.top[0]).is_some_and(|a| cx.flag_attr("deleted", a));

    let field = |cx: &mut Ctx, f: fields::Field| match get(item, f.top) {
        Some((n, a)) => cx.text_attr(n, a),
        None => meta_get(meta_ref, f.metadata, cx.repairs).and_then(|a| cx.text_attr(f.top[0], &a)),
    };
    let url = field(&mut cx, fields::URL);
    let caption = field(&mut cx, fields::CAPTION);

    let creator = parse_creator(item, meta_ref, &mut cx);
    let community = parse_community(item, meta_ref, &mut cx);

    let tags = match get(item, fields::TAGS.top) {
        Some((n, a)) => tags::parse_tags(a).unwrap_or_else(|| {
            cx.drifted(n, a);
            Vec::new()
        }),
        None => meta_get(meta_ref, fields::TAGS.metadata, cx.repairs)
            .and_then(|a| tags::parse_tags(&a))
            .unwrap_or_default(),
    };

    let stats = parse_stats(item, meta_ref, &mut cx);

    let posted_at = match get(item, fields::POSTED_AT.top) {
        Some((_, a)) => cx.time_attr(a),
        None => meta_get(meta_ref, fields::POSTED_AT.metadata, cx.repairs).and_then(|a| cx.time_attr(&a)),
    };

    for (name, a) in item {
        if !fields::is_known(name) {
            cx.drifted(name, a);
        }
    }

    let metadata = meta.into_column(cx.repairs);
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

#[cfg(test)]
mod tests;
