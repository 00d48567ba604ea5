//! The named repair rules and reject reasons: what the ledger counts, by the names it uses
//! (`sync_runs.repairs`, `quarantine.reason`), and their descriptions for the docs.

/// Drift observed in a page: (attribute, observed DynamoDB type) → how many records.
pub type Drift = std::collections::HashMap<(String, &'static str), u64>;

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
    /// A delete in an incremental export without the deleted item's old image: the
    /// content it removes cannot be known.
    DeleteWithoutOldImage,
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
            RejectReason::DeleteWithoutOldImage => "delete_without_old_image",
        }
    }

    /// Every reason, in code order.
    pub const ALL: [RejectReason; 7] = [
        RejectReason::NotJson,
        RejectReason::NotAMap,
        RejectReason::MissingContentId,
        RejectReason::MissingPlatform,
        RejectReason::MissingUpdatedAt,
        RejectReason::UnparseableUpdatedAt,
        RejectReason::DeleteWithoutOldImage,
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
            RejectReason::DeleteWithoutOldImage => {
                "a delete in an incremental export (no `NewImage`) without `OldImage`: which content it deletes cannot be known; export with the view type NEW_AND_OLD_IMAGES"
            }
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
