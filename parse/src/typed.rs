//! The typed path: an export line of the common record shape, read straight into a
//! [`Record`], borrowing every string from the line.
//!
//! Most lines of a full export share one shape: `{"Item": {…}}` whose attributes all carry a
//! name the contract knows, in the type it documents, every field present at the top level
//! (so the metadata never has to supply one), and metadata that is JSON text (or a map). For those lines the general path (decode into an
//! [`Item`](crate::attr::Item) of owned strings, then [`parse_item`](crate::parse_item))
//! builds a hash map only to look each field up once. This path walks simd-json's tape
//! instead and builds the record directly.
//!
//! It never decides anything the general path would decide differently. The repairs it makes
//! are the general path's own rules, counted alike: text cleaned (`text_surrogate`,
//! `text_control_chars`, `text_nfc`), a count or a timestamp that is not one (`number_invalid`,
//! `timestamp_invalid`), metadata text repaired (`metadata_repaired`). Anything else it does
//! not read exactly as the general path does makes it answer `None`, and the line takes the
//! general path: an unknown attribute (drift), a type the general path would coerce, a
//! `NULL`, two names of one field, a field absent at the top level (or cleaned away where the
//! general path would then ask the metadata), a reject. Metadata of any form is read as the
//! general path reads it (kept as text where it can be, else through its tree: unwrapped,
//! repaired, or not JSON at all, each counted). So for every line it reads, the general path gives the same record, the same
//! repairs, no drift and the same stamp form; property tests and the fuzz target check
//! exactly that.

use crate::attr::{Attr, Item};
use crate::number::{id_text, normalize_decimal};
use crate::record::fields;
use crate::tags::{push_tag, tags_of_text};
use crate::text::clean_text;
use crate::time::{StampForm, Timestamp};
use crate::{Community, Creator, Record};
use crate::{Repairs, Rule};
use simd_json::prelude::*;
use simd_json::tape::{Array, Object, Tape, Value};

thread_local! {
    /// Per thread: a copy of the line for simd-json to parse in place (the line itself must
    /// stay intact for the general path), simd-json's buffers and its tape, reused from line
    /// to line.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        line: Vec::new(),
        buffers: simd_json::Buffers::new(4096),
        tape: Some(Tape::null().reset()),
    });
}

struct Scratch {
    line: Vec<u8>,
    buffers: simd_json::Buffers,
    /// Empty between lines; `'static` because it borrows nothing then.
    tape: Option<Tape<'static>>,
}

/// Reads one export line of the common shape into a record, the form of its `updatedAt` and
/// the repairs made; `None` for any other line (the general path reads it).
///
/// A line holding a surrogate escape is not the common shape: the general path repairs such
/// lines as a whole before reading them (dropping `\u0000` escapes on the way).
pub fn parse_common_line(line: &[u8]) -> Option<(Record, StampForm, Repairs)> {
    if crate::json::has_surrogate_escape(line) {
        return None;
    }
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        s.line.clear();
        s.line.extend_from_slice(line);
        let mut tape = s.tape.take().unwrap_or_else(|| Tape::null().reset()).reset();
        let out = match simd_json::fill_tape(&mut s.line, &mut s.buffers, &mut tape) {
            Ok(()) => read_line(tape.as_value()),
            Err(_) => None,
        };
        s.tape = Some(tape.reset());
        out
    })
}

/// One attribute value, typed: `{"S": …}`, `{"N": …}`, `{"BOOL": …}`, `{"NULL": …}`,
/// `{"M": …}`, `{"L": …}` or `{"SS": …}`. Anything else (`B`, the other sets, an unquoted
/// number, a malformed value) is not the common shape. `NULL` is read only as metadata:
/// anywhere else the general path looks past it to another name or the metadata.
#[derive(Clone, Copy)]
enum V<'t, 'i> {
    S(&'i str),
    N(&'i str),
    Bool(bool),
    Null,
    M(Value<'t, 'i>),
    L(Value<'t, 'i>),
    Ss(Value<'t, 'i>),
}

fn typed<'t, 'i>(v: Value<'t, 'i>) -> Option<V<'t, 'i>> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    let (tag, inner) = o.iter().next()?;
    match tag {
        "S" => inner.into_string().map(V::S),
        "N" => inner.into_string().map(V::N),
        "BOOL" => inner.as_bool().map(V::Bool),
        "NULL" => Some(V::Null),
        "M" => inner.is_object().then_some(V::M(inner)),
        "L" => inner.is_array().then_some(V::L(inner)),
        "SS" => inner.is_array().then_some(V::Ss(inner)),
        _ => None,
    }
}

/// The top-level attributes the typed path reads, one slot per field (or flat attribute).
#[derive(Clone, Copy)]
enum Slot {
    ScanId,
    DatePartition,
    UpdatedAt,
    Platform,
    ContentId,
    Deleted,
    Url,
    Caption,
    Creator,
    CreatorId,
    CreatorHandle,
    CreatorDisplayName,
    CreatorFollowers,
    Community,
    CommunityId,
    CommunityName,
    Tags,
    Stats,
    PostedAt,
    Metadata,
}

const SLOTS: usize = Slot::Metadata as usize + 1;

/// The slot of a top-level attribute name: every name in [`fields::FIELDS`] (top-level and
/// flat) has one, and nothing else does (a test pins both).
fn slot(name: &str) -> Option<Slot> {
    Some(match name {
        "scanId" => Slot::ScanId,
        "datePartition" => Slot::DatePartition,
        "updatedAt" => Slot::UpdatedAt,
        "platform" => Slot::Platform,
        "contentId" | "content_id" | "postId" => Slot::ContentId,
        "deleted" => Slot::Deleted,
        "contentUrl" | "url" => Slot::Url,
        "caption" => Slot::Caption,
        "creator" => Slot::Creator,
        "creatorId" => Slot::CreatorId,
        "creatorHandle" => Slot::CreatorHandle,
        "creatorDisplayName" => Slot::CreatorDisplayName,
        "creatorFollowers" => Slot::CreatorFollowers,
        "community" => Slot::Community,
        "communityId" => Slot::CommunityId,
        "communityName" => Slot::CommunityName,
        "tags" => Slot::Tags,
        "stats" => Slot::Stats,
        "postedAt" => Slot::PostedAt,
        "metadata" => Slot::Metadata,
        _ => return None,
    })
}

/// Fills one slot per attribute of `map`; `None` if an attribute has no slot, is not typed,
/// or a slot is filled twice (two names of one field: which one wins is the general path's
/// business).
fn fill<'t, 'i, const N: usize>(
    map: Object<'t, 'i>,
    slot_of: impl Fn(&str) -> Option<usize>,
) -> Option<[Option<V<'t, 'i>>; N]> {
    let mut slots = [None; N];
    for (name, v) in map.iter() {
        let i = slot_of(name)?;
        if slots[i].replace(typed(v)?).is_some() {
            return None;
        }
    }
    Some(slots)
}

/// A text attribute (`S` only: an `N` would be coerced, which the drift ledger records),
/// cleaned and its repairs counted as the general path counts them.
///
/// The readers below answer `None` for "not the common shape" (the line goes to the general
/// path); a `Some(None)` is a field the general path leaves empty too (a blank text, an id
/// that is not an integer, a count that is not a number).
fn text_attr(v: V, r: &mut Repairs) -> Option<Option<String>> {
    match v {
        V::S(s) => {
            let (out, done) = clean_text(s);
            crate::record::count_text_repairs(r, done);
            Some(out)
        }
        _ => None,
    }
}

/// An id: `S` cleaned, `N` as exact integer text.
fn id_attr(v: V, r: &mut Repairs) -> Option<Option<String>> {
    match v {
        V::N(n) => Some(id_text(n)),
        _ => text_attr(v, r),
    }
}

/// A count: `N` or numeric `S`, exact; anything else (but `NULL`, which the general path
/// looks past) null and counted.
fn count_attr(v: V, r: &mut Repairs) -> Option<Option<String>> {
    let out = match v {
        V::Null => return None,
        V::N(n) | V::S(n) => normalize_decimal(n),
        _ => None,
    };
    if out.is_none() {
        r.add(Rule::NumberInvalid);
    }
    Some(out)
}

/// A timestamp: ISO text or epoch (`S` or `N`); anything else (but `NULL`) null and counted.
fn time_attr(v: V, r: &mut Repairs) -> Option<Option<Timestamp>> {
    let out = match v {
        V::Null => return None,
        V::S(s) | V::N(s) => Timestamp::parse(s),
        _ => None,
    };
    if out.is_none() {
        r.add(Rule::TimestampInvalid);
    }
    Some(out)
}

fn flag_attr(v: V) -> Option<bool> {
    match v {
        V::Bool(b) => Some(b),
        _ => None,
    }
}

fn read_line(top: Value) -> Option<(Record, StampForm, Repairs)> {
    let top = top.as_object()?;
    let (key, item) = top.iter().next()?;
    if top.len() != 1 || key != "Item" {
        return None;
    }
    let a: [Option<V>; SLOTS] = fill(item.as_object()?, |n| slot(n).map(|s| s as usize))?;
    let get = |s: Slot| a[s as usize];
    let r = &mut Repairs::default();

    let V::S(stamp) = get(Slot::UpdatedAt)? else { return None };
    let updated_at = Timestamp::parse(stamp)?;
    // Cleaned away, the platform and the content id would be asked of the metadata, and the
    // partition taken from elsewhere: those lines take the general path.
    let platform = text_attr(get(Slot::Platform)?, r)??.to_lowercase();
    let external_id = id_attr(get(Slot::ContentId)?, r)??;
    let scan_id = id_attr(get(Slot::ScanId)?, r)?.unwrap_or_default();
    let partition = text_attr(get(Slot::DatePartition)?, r)??;
    let deleted = match get(Slot::Deleted) {
        Some(v) => flag_attr(v)?,
        None => false,
    };
    let url = text_attr(get(Slot::Url)?, r)?;
    let caption = text_attr(get(Slot::Caption)?, r)?;
    let creator = read_creator(&a, r)?;
    let community = read_community(&a, r)?;
    let tags = read_tags(get(Slot::Tags)?)?;
    let stats = read_stats(get(Slot::Stats)?, r)?;
    let posted_at = time_attr(get(Slot::PostedAt)?, r)?;
    // As the general path reads it: text kept as is where it can be (most lines), else the
    // tree (unwrapped, repaired, or any other attribute as JSON) and its `jsonb` text.
    let metadata = match get(Slot::Metadata) {
        None | Some(V::Null) => None,
        Some(V::S(s)) => crate::record::metadata_of_text(s, r).into_column(r),
        Some(v) => crate::record::parse_metadata(Some(&attr_of(v)?), r).into_column(r),
    };
    let record = Record {
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
        extra: None,
        removal: None,
    };
    Some((record, StampForm::of_parsed(stamp), *r))
}

/// A map of attributes as the general path's [`Item`] (metadata given as a map).
fn item_of(m: Value) -> Option<Item> {
    let m = m.as_object()?;
    let mut item = Item::with_capacity_and_hasher(m.len(), Default::default());
    for (k, v) in m.iter() {
        if item.insert(k.to_owned(), attr_of(typed(v)?)?).is_some() {
            return None;
        }
    }
    Some(item)
}

fn attr_of(v: V) -> Option<Attr> {
    Some(match v {
        V::S(s) => Attr::S(s.to_owned()),
        V::N(n) => Attr::N(n.to_owned()),
        V::Bool(b) => Attr::Bool(b),
        V::Null => Attr::Null,
        V::M(m) => Attr::M(item_of(m)?),
        V::L(xs) => Attr::L(xs.as_array()?.iter().map(|x| attr_of(typed(x)?)).collect::<Option<_>>()?),
        V::Ss(xs) => Attr::Ss(strings(xs.as_array()?).map(|x| x.map(str::to_owned)).collect::<Option<_>>()?),
    })
}

/// The index of a map's key among a field's sub-fields (each under any of its names), in
/// the order of [`fields::Field::inside`].
fn sub_slot(field: fields::Field, name: &str) -> Option<usize> {
    field.inside.iter().position(|(_, names)| names.contains(&name))
}

/// `Some(creator)`: the creator as the general path reads it (itself `None` when it has
/// neither id nor handle); `None`: not the common shape.
fn read_creator(a: &[Option<V>; SLOTS], r: &mut Repairs) -> Option<Option<Creator>> {
    let flat = [Slot::CreatorId, Slot::CreatorHandle, Slot::CreatorDisplayName, Slot::CreatorFollowers]
        .map(|s| a[s as usize]);
    let (id, handle, display_name, followers, deleted) = match a[Slot::Creator as usize] {
        // The map, and nothing flat beside it.
        Some(V::M(m)) if flat.iter().all(Option::is_none) => {
            // In the order of `CREATOR.inside`: id, handle, display name, followers, deleted.
            let m: [Option<V>; 5] = fill(m.as_object()?, |n| sub_slot(fields::CREATOR, n))?;
            (
                m[0].map_or(Some(None), |v| id_attr(v, r))?,
                m[1].map_or(Some(None), |v| text_attr(v, r))?,
                m[2].map_or(Some(None), |v| text_attr(v, r))?,
                m[3].map_or(Some(None), |v| count_attr(v, r))?,
                m[4].map_or(Some(false), flag_attr)?,
            )
        }
        Some(_) => return None,
        None => {
            let [id, handle, display_name, followers] = flat;
            let id = id.map_or(Some(None), |v| id_attr(v, r))?;
            let handle = handle.map_or(Some(None), |v| text_attr(v, r))?;
            // Without either, the general path looks in the metadata.
            if id.is_none() && handle.is_none() {
                return None;
            }
            let display_name = display_name.map_or(Some(None), |v| text_attr(v, r))?;
            let followers = followers.map_or(Some(None), |v| count_attr(v, r))?;
            (id, handle, display_name, followers, false)
        }
    };
    let Some(external_id) = id.or_else(|| handle.as_ref().map(|h| h.to_lowercase())) else {
        return Some(None);
    };
    Some(Some(Creator { external_id, handle, display_name, followers, deleted }))
}

/// As [`read_creator`], for the community.
fn read_community(a: &[Option<V>; SLOTS], r: &mut Repairs) -> Option<Option<Community>> {
    let flat = [Slot::CommunityId, Slot::CommunityName].map(|s| a[s as usize]);
    let [id, name] = match a[Slot::Community as usize] {
        Some(V::M(m)) if flat.iter().all(Option::is_none) => {
            // In the order of `COMMUNITY.inside`: id, name.
            fill(m.as_object()?, |n| sub_slot(fields::COMMUNITY, n))?
        }
        Some(_) => return None,
        None => flat,
    };
    let id = id.map_or(Some(None), |v| id_attr(v, r))?;
    let name = name.map_or(Some(None), |v| text_attr(v, r))?;
    if id.is_none() && name.is_none() {
        // Beside a map this is simply no community; without one, the metadata is asked.
        return a[Slot::Community as usize].map(|_| None);
    }
    let external_id = id.or_else(|| name.as_ref().map(|n| n.to_lowercase()))?;
    Some(Some(Community { external_id, name }))
}

fn read_tags(v: V) -> Option<Vec<String>> {
    let mut out = Vec::new();
    match v {
        V::Ss(xs) => {
            for x in strings(xs.as_array()?) {
                push_tag(&mut out, x?);
            }
        }
        V::L(xs) => {
            for x in xs.as_array()?.iter() {
                match typed(x)? {
                    V::S(s) | V::N(s) => push_tag(&mut out, s),
                    _ => return None,
                }
            }
        }
        V::S(s) => tags_of_text(&mut out, s),
        _ => return None,
    }
    Some(out)
}

fn strings<'t, 'i>(xs: Array<'t, 'i>) -> impl Iterator<Item = Option<&'i str>> + 't {
    xs.iter().map(|x| x.into_string())
}

fn read_stats(v: V, r: &mut Repairs) -> Option<[Option<String>; 4]> {
    let V::M(m) = v else { return None };
    // In the order of `STATS.inside`: views, likes, comments, shares.
    let m: [Option<V>; 4] = fill(m.as_object()?, |n| sub_slot(fields::STATS, n))?;
    let mut out: [Option<String>; 4] = Default::default();
    for (o, v) in out.iter_mut().zip(m) {
        if let Some(v) = v {
            *o = count_attr(v, r)?;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::check_against_general_path;

    use crate::attr::write_item_dynamodb_json;

    fn s(x: &str) -> Attr {
        Attr::S(x.into())
    }

    fn m(pairs: &[(&str, Attr)]) -> Attr {
        Attr::M(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    /// A record of the common shape.
    fn common() -> Item {
        [
            ("scanId", s("scan-1")),
            ("datePartition", s("2026-11-26")),
            ("updatedAt", s("2026-11-26T10:00:00.123-05:00")),
            ("platform", s(" TikTok ")),
            ("contentId", Attr::N("9007199254740993".into())),
            ("url", s("https://example.com/p/1")),
            ("caption", s("Café au lait 🎬")),
            ("creator", m(&[("id", s("c1")), ("handle", s("Ann")), ("followers", Attr::N("12".into()))])),
            ("communityId", s("g1")),
            ("communityName", s("Group 1")),
            ("tags", Attr::L(vec![s("#Rust"), s("data")])),
            ("stats", m(&[("views", Attr::N("100".into())), ("likes", s("10"))])),
            ("postedAt", Attr::N("1764115200".into())),
            ("metadata", s(r#"{"lang":"en","score":18446744073709551616}"#)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn line(item: &Item) -> Vec<u8> {
        let mut out = String::from("{\"Item\":");
        write_item_dynamodb_json(item, &mut out);
        out.push('}');
        out.into_bytes()
    }

    #[test]
    fn a_line_of_the_common_shape_is_read_by_the_typed_path_as_the_general_path_reads_it() {
        assert_eq!(check_against_general_path(&line(&common())), Ok(true));
        let mut flat = common();
        flat.remove("creator");
        flat.insert("creatorHandle".into(), s("Ann"));
        flat.remove("communityId");
        flat.remove("communityName");
        flat.insert("community".into(), m(&[("name", s("Group 1"))]));
        flat.insert("tags".into(), Attr::Ss(vec!["a".into(), "b".into()]));
        flat.insert("deleted".into(), Attr::Bool(true));
        flat.insert("metadata".into(), m(&[("lang", s("en")), ("n", Attr::N("7".into()))]));
        assert_eq!(check_against_general_path(&line(&flat)), Ok(true));
        let (r, _, _) = parse_common_line(&line(&flat)).unwrap();
        assert_eq!(r.creator.unwrap().external_id, "ann");
        assert!(r.deleted);
        assert_eq!(r.metadata.as_deref(), Some(r#"{"lang":"en","n":7}"#));
        flat.insert("metadata".into(), Attr::Null);
        assert_eq!(check_against_general_path(&line(&flat)), Ok(true));
    }

    #[test]
    fn a_line_with_text_numbers_or_metadata_to_repair_is_read_typed_with_the_same_repairs() {
        let cases: Vec<(&str, Attr, Rule)> = vec![
            ("caption", s("Cafe\u{301}"), Rule::TextNfc),
            ("caption", s("bell\u{7}"), Rule::TextControl),
            ("url", s("nul\u{0}"), Rule::TextControl),
            ("stats", m(&[("views", s("n/a"))]), Rule::NumberInvalid),
            ("creator", m(&[("id", s("c1")), ("followers", Attr::Bool(true))]), Rule::NumberInvalid),
            ("postedAt", s("sometime last week"), Rule::TimestampInvalid),
            ("metadata", s("\u{feff}{\"a\":1}"), Rule::MetadataRepaired),
            ("metadata", s(r#""{\"a\":1}""#), Rule::MetadataUnwrapped),
            ("metadata", s("not json"), Rule::MetadataInvalid),
            ("metadata", s(r#"{"big":1e999999}"#), Rule::MetadataUnfit),
            ("metadata", m(&[("a", s("nul\u{0}"))]), Rule::MetadataRepaired),
            ("metadata", Attr::L(vec![s("nul\u{0}")]), Rule::MetadataRepaired),
        ];
        for (name, value, rule) in cases {
            let mut item = common();
            item.insert(name.into(), value.clone());
            assert_eq!(check_against_general_path(&line(&item)), Ok(true), "{name} = {value:?}");
            let (_, _, repairs) = parse_common_line(&line(&item)).unwrap();
            assert_eq!(repairs.get(rule), 1, "{name} = {value:?}: {repairs:?}");
        }
    }

    #[test]
    fn a_line_the_general_path_would_coerce_drift_or_fall_back_on_takes_the_general_path() {
        let cases: Vec<(&str, Attr)> = vec![
            ("caption", Attr::N("12".into())),
            ("caption", Attr::Null),
            ("platform", s("  ")),
            ("contentId", Attr::N("x".into())),
            ("mood", s("happy")),
            ("contentUrl", s("https://example.com/other")),
            ("creatorId", s("c2")),
            ("stats", m(&[("reach", Attr::N("1".into()))])),
            ("stats", m(&[("views", Attr::Null)])),
            ("stats", s(r#"{"views":1}"#)),
            ("postedAt", Attr::Null),
            ("tags", Attr::Ns(vec!["1".into()])),
            ("tags", Attr::L(vec![Attr::Bool(true)])),
            ("deleted", s("true")),
            ("updatedAt", Attr::N("1764115200".into())),
        ];
        for (name, value) in cases {
            let mut item = common();
            item.insert(name.into(), value.clone());
            assert_eq!(check_against_general_path(&line(&item)), Ok(false), "{name} = {value:?}");
        }
        for name in ["url", "caption", "creator", "tags", "stats", "postedAt", "scanId", "datePartition"] {
            let mut item = common();
            item.remove(name);
            assert_eq!(check_against_general_path(&line(&item)), Ok(false), "without {name}");
        }
        let change = br#"{"Keys":{"scanId":{"S":"s1"}},"NewImage":{"scanId":{"S":"s1"}}}"#;
        assert_eq!(check_against_general_path(change), Ok(false));
        // The general path repairs a line with a surrogate escape as a whole (its `\u0000`
        // escapes go too, uncounted), so the typed path leaves it alone.
        let mut item = common();
        item.insert("caption".into(), s("nul \u{0} then SURROGATE"));
        let escaped = String::from_utf8(line(&item)).unwrap().replace("SURROGATE", r"\ud83d");
        assert_eq!(check_against_general_path(escaped.as_bytes()), Ok(false));
    }

    #[test]
    fn a_line_whose_text_quotes_a_surrogate_escape_is_read_typed() {
        // `\ud83d` as text (a backslash, then `ud83d`) in a caption and in the metadata's JSON:
        // escaped in the line, no surrogate escape of the line's own.
        let mut item = common();
        item.insert("caption".into(), s("nul \u{0} then \\ud83d"));
        item.insert("metadata".into(), s(r#"{"k":"\ud83d!"}"#));
        assert_eq!(check_against_general_path(&line(&item)), Ok(true));
        let (r, _, repairs) = parse_common_line(&line(&item)).unwrap();
        // Text that spells a lone surrogate is one to the text rules (`text_surrogate`).
        assert_eq!(r.caption.as_deref(), Some("nul  then \u{fffd}"));
        assert_eq!(r.metadata.as_deref(), Some(r#"{"k":"\ufffd!"}"#));
        let counted =
            [Rule::TextControl, Rule::TextSurrogate, Rule::MetadataRepaired].map(|r| repairs.get(r));
        assert_eq!(counted, [1, 1, 1], "{repairs:?}");
    }

    #[test]
    fn the_sub_field_slots_follow_the_order_the_readers_take_them_in() {
        let order = |f: fields::Field| f.inside.iter().map(|(sub, _)| *sub).collect::<Vec<_>>();
        assert_eq!(order(fields::CREATOR), ["id", "handle", "display name", "followers", "deleted"]);
        assert_eq!(order(fields::COMMUNITY), ["id", "name"]);
        assert_eq!(order(fields::STATS), ["views", "likes", "comments", "shares"]);
    }

    #[test]
    fn every_known_top_level_name_has_a_slot_and_nothing_else_does() {
        for f in fields::FIELDS {
            for name in f.top.iter().chain(f.flat.iter().map(|(_, n)| n)) {
                assert!(slot(name).is_some(), "{name} has no slot");
            }
        }
        for name in ["mood", "author", "statistics", "hashtags", "Item", "id"] {
            assert!(slot(name).is_none(), "{name}");
        }
    }
}
