//! Stream changes as the raw records every source delivers, so that the same parser, fold,
//! writer and merge rules apply: a put is its new image (newest wins by `updatedAt`, never by
//! stream order), a removal is [`RawRecord::Removal`] of its old image (docs/contract.md,
//! "Removals"), and a removal without an old image is quarantined.

use super::{Change, ChangeKind};
use crate::attr::write_item_dynamodb_json;
use crate::parse::{RawRecord, RejectReason, Removal};

/// The raw record of one change.
pub fn raw_record(c: &Change) -> RawRecord {
    match &c.kind {
        ChangeKind::Put(item) => RawRecord::Item(item.clone()),
        ChangeKind::Remove { old: Some(old), by_ttl, .. } => {
            RawRecord::Removal { item: old.clone(), removal: Removal { at: c.at, by_ttl: *by_ttl } }
        }
        ChangeKind::Remove { old: None, keys, .. } => {
            let mut raw = String::from("{\"Keys\":");
            write_item_dynamodb_json(keys, &mut raw);
            raw.push('}');
            RawRecord::Unreadable { reason: RejectReason::DeleteWithoutOldImage, raw }
        }
    }
}

/// Where change `c` of `shard` was read, for the quarantine (`shard:sequence`).
pub fn origin(shard: &str, c: &Change) -> String {
    format!("{shard}:{}", c.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{Attr, Item};
    use crate::parse::{parse_page, Filter};
    use crate::time::Timestamp;

    fn item(scan: &str, at: &str) -> Item {
        [("scanId", scan), ("updatedAt", at), ("platform", "x"), ("contentId", "p1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Attr::S(v.to_string())))
            .collect()
    }

    fn removal(by_ttl: bool) -> Change {
        let old = item("scan-a", "2026-11-01T00:00:00Z");
        let keys = [("scanId".to_string(), Attr::S("scan-a".into()))].into_iter().collect();
        Change {
            seq: "7".into(),
            at: Timestamp::parse("2026-11-21T00:00:00Z"),
            kind: ChangeKind::Remove { old: Some(old), keys, by_ttl },
        }
    }

    #[test]
    fn a_removal_is_a_tombstone_of_its_old_image_and_a_ttl_expiry_is_left_alone_unless_asked() {
        let page = parse_page("", vec![raw_record(&removal(false))], &Filter::default());
        assert!(page.records[0].deleted);
        assert_eq!(page.records[0].removal.and_then(|r| r.at), Timestamp::parse("2026-11-21T00:00:00Z"));
        let page = parse_page("", vec![raw_record(&removal(true))], &Filter::default());
        assert_eq!((page.records.len(), page.ttl_removals_ignored), (0, 1));
        let page = parse_page(
            "",
            vec![raw_record(&removal(true))],
            &Filter { ttl_removals: true, ..Filter::default() },
        );
        assert_eq!(page.records.len(), 1);
    }

    #[test]
    fn a_removal_without_old_image_is_quarantined_with_its_key() {
        let mut c = removal(false);
        if let ChangeKind::Remove { old, .. } = &mut c.kind {
            *old = None;
        }
        let page = parse_page("", vec![raw_record(&c)], &Filter::default());
        assert_eq!(page.rejects[0].reason, RejectReason::DeleteWithoutOldImage);
        assert!(page.rejects[0].raw.contains("scan-a"), "{}", page.rejects[0].raw);
    }
}
