//! Per-record state of the parse: where repairs are counted and drift is collected, and the
//! typed readers of attributes that count them.

use super::rules::{Drift, Repairs, Rule};
use crate::attr::{Attr, Item};
use crate::json::attr_to_json;
use crate::number::{id_text, normalize_decimal};
use crate::text::clean_text;
use crate::time::Timestamp;
use serde_json::{Map, Value};

/// Per-record state: where repairs are counted and drift is collected.
pub(super) struct Ctx<'a> {
    pub(super) repairs: &'a mut Repairs,
    pub(super) drift: &'a mut Drift,
    pub(super) extra: Map<String, Value>,
}

/// Counts what [`clean_text`] repaired in one value.
pub fn count_text_repairs(repairs: &mut Repairs, r: crate::text::TextRepairs) {
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
    pub(super) fn text(&mut self, s: &str) -> Option<String> {
        let (out, r) = clean_text(s);
        count_text_repairs(self.repairs, r);
        out
    }

    /// Keeps a known attribute that arrived with a type we cannot coerce.
    pub(super) fn drifted(&mut self, name: &str, a: &Attr) {
        *self.drift.entry((name.to_owned(), a.type_name())).or_default() += 1;
        self.extra.insert(name.to_owned(), attr_to_json(a));
    }

    /// Notes a known attribute that arrived with an undocumented type but could be
    /// coerced: counted as a repair and recorded in the drift ledger.
    pub(super) fn coerced(&mut self, name: &str, a: &Attr) {
        self.repairs.add(Rule::TypeCoerced);
        *self.drift.entry((name.to_owned(), a.type_name())).or_default() += 1;
    }

    /// Reads a string-like attribute: S as is, N coerced (unambiguous), others drift.
    pub(super) fn text_attr(&mut self, name: &str, a: &Attr) -> Option<String> {
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
    pub(super) fn id_attr(&mut self, name: &str, a: &Attr) -> Option<String> {
        match a {
            Attr::N(n) => id_text(n),
            _ => self.text_attr(name, a),
        }
    }

    /// Reads a count: N or numeric S, exact; anything else null and counted.
    pub(super) fn count_attr(&mut self, a: &Attr) -> Option<String> {
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
    pub(super) fn time_attr(&mut self, a: &Attr) -> Option<Timestamp> {
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

    pub(super) fn flag_attr(&mut self, name: &str, a: &Attr) -> bool {
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
pub(super) fn get<'a>(item: &'a Item, names: &[&'static str]) -> Option<(&'static str, &'a Attr)> {
    names.iter().find_map(|n| item.get(*n).filter(|a| **a != Attr::Null).map(|a| (*n, a)))
}
