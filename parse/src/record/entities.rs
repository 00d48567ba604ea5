//! The entities a record describes besides its content: creator, community, and stats.

use super::ctx::{get, Ctx};
use super::fields::{COMMUNITY, CREATOR, STATS};
use super::meta::{json_to_attr, meta_get, Meta};
use super::rules::Rule;
use super::{Community, Creator};
use crate::attr::{Attr, Item};
use crate::json::{parse_json_text, Parsed};
use serde_json::Value;

pub(crate) fn parse_creator(item: &Item, meta: &Meta, cx: &mut Ctx) -> Option<Creator> {
    let from_map = |cx: &mut Ctx, m: &Item| {
        let id = get(m, CREATOR.sub("id")).and_then(|(n, a)| cx.id_attr(n, a));
        let handle = get(m, CREATOR.sub("handle")).and_then(|(n, a)| cx.text_attr(n, a));
        let display_name = get(m, CREATOR.sub("display name")).and_then(|(n, a)| cx.text_attr(n, a));
        let followers = get(m, CREATOR.sub("followers")).and_then(|(_, a)| cx.count_attr(a));
        let deleted = get(m, CREATOR.sub("deleted")).is_some_and(|(n, a)| cx.flag_attr(n, a));
        (id, handle, display_name, followers, deleted)
    };
    let (id, handle, display_name, followers, deleted) = match item.get(CREATOR.top[0]) {
        Some(Attr::M(m)) => from_map(cx, m),
        Some(a @ Attr::S(s)) if item.get(CREATOR.flat("id")[0]).is_none() => {
            // A bare string creator is its handle.
            cx.coerced("creator", a);
            (None, cx.text(s), None, None, false)
        }
        Some(other) if *other != Attr::Null => {
            cx.drifted("creator", other);
            (None, None, None, None, false)
        }
        _ => {
            let id = get(item, CREATOR.flat("id")).and_then(|(n, a)| cx.id_attr(n, a));
            let handle = get(item, CREATOR.flat("handle")).and_then(|(n, a)| cx.text_attr(n, a));
            let display = get(item, CREATOR.flat("display name")).and_then(|(n, a)| cx.text_attr(n, a));
            let followers = get(item, CREATOR.flat("followers")).and_then(|(_, a)| cx.count_attr(a));
            if id.is_some() || handle.is_some() {
                (id, handle, display, followers, false)
            } else {
                match meta_get(meta, CREATOR.metadata, cx.repairs) {
                    Some(Attr::M(m)) => from_map(cx, &m),
                    _ => (None, None, None, None, false),
                }
            }
        }
    };
    let external_id = id.or_else(|| handle.as_ref().map(|h| h.to_lowercase()))?;
    Some(Creator { external_id, handle, display_name, followers, deleted })
}

pub(crate) fn parse_community(item: &Item, meta: &Meta, cx: &mut Ctx) -> Option<Community> {
    let from_map = |cx: &mut Ctx, m: &Item| {
        let id = get(m, COMMUNITY.sub("id")).and_then(|(n, a)| cx.id_attr(n, a));
        let name = get(m, COMMUNITY.sub("name")).and_then(|(n, a)| cx.text_attr(n, a));
        (id, name)
    };
    let (id, name) = match item.get(COMMUNITY.top[0]) {
        Some(Attr::M(m)) => from_map(cx, m),
        Some(a @ Attr::S(s)) if item.get(COMMUNITY.flat("id")[0]).is_none() => {
            // A bare string community is its name.
            cx.coerced("community", a);
            (None, cx.text(s))
        }
        Some(other) if *other != Attr::Null => {
            cx.drifted("community", other);
            (None, None)
        }
        _ => {
            let id = get(item, COMMUNITY.flat("id")).and_then(|(n, a)| cx.id_attr(n, a));
            let name = get(item, COMMUNITY.flat("name")).and_then(|(n, a)| cx.text_attr(n, a));
            if id.is_some() || name.is_some() {
                (id, name)
            } else {
                match meta_get(meta, COMMUNITY.metadata, cx.repairs) {
                    Some(Attr::M(m)) => from_map(cx, &m),
                    _ => (None, None),
                }
            }
        }
    };
    let external_id = id.or_else(|| name.as_ref().map(|n| n.to_lowercase()))?;
    Some(Community { external_id, name })
}

pub(crate) fn parse_stats(item: &Item, meta: &Meta, cx: &mut Ctx) -> [Option<String>; 4] {
    let names: [&[&str]; 4] =
        [STATS.sub("views"), STATS.sub("likes"), STATS.sub("comments"), STATS.sub("shares")];
    let map: Option<Item> = match item.get(STATS.top[0]) {
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
        _ => match meta_get(meta, STATS.metadata, cx.repairs) {
            Some(Attr::M(m)) => Some(m),
            _ => None,
        },
    };
    let Some(map) = map else {
        return Default::default();
    };
    names.map(|names| get(&map, names).and_then(|(_, a)| cx.count_attr(a)))
}
