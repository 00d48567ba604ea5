//! One item into a record: every field through its aliases and the metadata fallbacks.

use super::ctx::{get, Ctx};
use super::entities::{parse_community, parse_creator, parse_stats};
use super::fields;
use super::meta::{meta_get, parse_metadata};
use super::rules::{Drift, RejectReason, Repairs, Rule};
use super::Record;
use crate::attr::{Attr, Item};
use crate::json::{jsonb_text, strip_nul};
use crate::tags;
use crate::time::Timestamp;
use serde_json::{Map, Value};

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
        removal: None,
    })
}
