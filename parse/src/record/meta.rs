//! The metadata blob: repaired into jsonb-ready text, and the fallbacks read from it when a
//! field is missing at the top level.

use super::rules::{Repairs, Rule};
use crate::attr::Attr;
use crate::json::{
    attr_to_json, is_json, numbers_fit_numeric, parse_json_text, plain_json_container, repair_json_text,
    strip_nul, Parsed,
};
use serde_json::Value;

/// Converts plain JSON (from metadata) into an attribute, so fallbacks share the readers.
pub(crate) fn json_to_attr(v: &Value) -> Attr {
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
pub(crate) struct Meta {
    /// The text for the `metadata` column, when already known to be fit for `jsonb`.
    pub(crate) text: Option<String>,
    pub(crate) tree: std::cell::OnceCell<Option<Value>>,
}

impl Meta {
    fn of_tree(tree: Option<Value>) -> Self {
        Meta { text: None, tree: tree.into() }
    }

    /// The `metadata` column: the text kept, else the tree as `jsonb` text, or none (counted
    /// `metadata_unfit`) where it does not fit `jsonb`. The general path and `crate::typed`
    /// both end here.
    pub(crate) fn into_column(self, repairs: &mut Repairs) -> Option<String> {
        if self.text.is_some() {
            return self.text;
        }
        let text = crate::json::jsonb_text(self.tree.into_inner().flatten().as_ref()?);
        if text.is_none() {
            repairs.add(Rule::MetadataUnfit);
        }
        text
    }

    fn tree(&self) -> Option<&Value> {
        self.tree.get_or_init(|| self.text.as_deref().and_then(|t| serde_json::from_str(t).ok())).as_ref()
    }
}

/// Looks `names` up in the metadata object, counting a hit as a fallback.
pub(crate) fn meta_get(meta: &Meta, names: &[&str], repairs: &mut Repairs) -> Option<Attr> {
    let obj = meta.tree()?.as_object()?;
    let v = names.iter().find_map(|n| obj.get(*n).filter(|v| !v.is_null()))?;
    repairs.add(Rule::MetadataFallback);
    Some(json_to_attr(v))
}

/// Parses the metadata attribute.
pub(crate) fn parse_metadata(a: Option<&Attr>, repairs: &mut Repairs) -> Meta {
    match a {
        Some(Attr::S(s)) => metadata_of_text(s, repairs),
        _ => Meta::of_tree(parse_metadata_tree(a, repairs)),
    }
}

/// Metadata given as text (also `crate::typed`'s, borrowed from the line): kept as its
/// repaired text where it can be ([`metadata_text_repaired`]), else parsed into its tree.
pub(crate) fn metadata_of_text(s: &str, repairs: &mut Repairs) -> Meta {
    match metadata_text_repaired(s, repairs) {
        Some(text) => Meta { text: Some(text), tree: std::cell::OnceCell::new() },
        None => Meta::of_tree(parse_metadata_tree(Some(&Attr::S(s.to_owned())), repairs)),
    }
}

/// The fast path of [`parse_metadata`]: an object or array that is valid JSON once repaired
/// (the repair removed any NUL; it is counted) with no number outside `numeric` is kept as
/// its text; `None` for any other.
fn metadata_text_repaired(s: &str, repairs: &mut Repairs) -> Option<String> {
    // Most metadata: the three checks below in one pass.
    if plain_json_container(s) {
        return Some(s.to_owned());
    }
    let (fixed, repaired) = repair_json_text(s);
    let t = fixed.trim_start();
    if !((t.starts_with('{') || t.starts_with('[')) && numbers_fit_numeric(t) && is_json(t)) {
        return None;
    }
    if repaired {
        repairs.add(Rule::MetadataRepaired);
    }
    Some(fixed)
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
