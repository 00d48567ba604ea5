//! The one table of the names each field arrives under. The parser reads through it, the
//! list of attributes it understands (anything else is drift, kept in `extra`) is derived
//! from it, and so is the field table of docs/contract.md.

/// A field of the canonical record and the names it arrives under.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The field, as the docs name it.
    pub name: &'static str,
    /// Top-level attribute names, first present (non-NULL) wins.
    pub top: &'static [&'static str],
    /// Names looked up in the metadata when the field is absent at the top level.
    pub metadata: &'static [&'static str],
    /// Sub-fields inside the field's map, each with its names (creator, community, stats).
    pub inside: &'static [(&'static str, &'static [&'static str])],
    /// Sub-fields that also arrive as flat top-level attributes (`creatorId`, …).
    pub flat: &'static [(&'static str, &'static str)],
    /// The types and forms accepted, for the docs.
    pub accepts: &'static str,
}

impl Field {
    const fn simple(
        name: &'static str,
        top: &'static [&'static str],
        metadata: &'static [&'static str],
        accepts: &'static str,
    ) -> Self {
        Field { name, top, metadata, inside: &[], flat: &[], accepts }
    }

    /// Returns the names of sub-field `sub` inside the field's map.
    pub fn sub(&self, sub: &str) -> &'static [&'static str] {
        self.inside.iter().find(|(s, _)| *s == sub).map(|(_, n)| *n).unwrap_or(&[])
    }

    /// Returns the flat top-level attribute of sub-field `sub`, if it has one.
    pub fn flat(&self, sub: &str) -> &'static [&'static str] {
        match self.flat.iter().position(|(s, _)| *s == sub) {
            Some(i) => std::slice::from_ref(&self.flat[i].1),
            None => &[],
        }
    }
}

/// The DynamoDB key of the scan event.
pub const SCAN_ID: Field = Field::simple("scan id", &["scanId"], &[], "S or N");
/// The UTC day partition (the index's hash key).
pub const DATE_PARTITION: Field = Field::simple("date partition", &["datePartition"], &[], "S, `YYYY-MM-DD`");
/// When the record last changed (the index's range key): the record's version.
pub const UPDATED_AT: Field = Field::simple(
    "updated at",
    &["updatedAt"],
    &[],
    "S (or N): ISO 8601 with any precision and zone, `T` or a space; a date; epoch seconds or milliseconds",
);
/// The platform's post id.
pub const CONTENT_ID: Field = Field::simple(
    "content id",
    &["contentId", "content_id", "postId"],
    &["id", "contentId", "postId"],
    "S or N, kept exactly (ids above 2^53 included)",
);
/// The platform.
pub const PLATFORM: Field = Field::simple("platform", &["platform"], &["platform"], "S, lowercased");
/// The post's URL.
pub const URL: Field = Field::simple("url", &["contentUrl", "url"], &["url", "permalink"], "S");
/// The post's text.
pub const CAPTION: Field = Field::simple("caption", &["caption"], &["caption", "text", "description"], "S");
/// The author.
pub const CREATOR: Field = Field {
    name: "creator",
    top: &["creator"],
    metadata: &["author", "creator"],
    inside: &[
        ("id", &["id", "creatorId"]),
        ("handle", &["handle", "username"]),
        ("display name", &["displayName", "display_name", "name"]),
        ("followers", &["followers", "followerCount"]),
        ("deleted", &["deleted", "isDeleted"]),
    ],
    flat: &[
        ("id", "creatorId"),
        ("handle", "creatorHandle"),
        ("display name", "creatorDisplayName"),
        ("followers", "creatorFollowers"),
    ],
    accepts: "M, or the flat attributes",
};
/// The subreddit, channel or group.
pub const COMMUNITY: Field = Field {
    name: "community",
    top: &["community"],
    metadata: &["community"],
    inside: &[("id", &["id", "communityId"]), ("name", &["name", "communityName"])],
    flat: &[("id", "communityId"), ("name", "communityName")],
    accepts: "M, or the flat attributes",
};
/// Hashtags.
pub const TAGS: Field = Field::simple(
    "tags",
    &["tags"],
    &["tags", "hashtags"],
    "SS, L of S, an S holding a JSON array, or a comma-separated S",
);
/// Engagement counts.
pub const STATS: Field = Field {
    name: "stats",
    top: &["stats"],
    metadata: &["stats", "statistics"],
    inside: &[
        ("views", &["views", "viewCount", "playCount"]),
        ("likes", &["likes", "likeCount", "diggCount"]),
        ("comments", &["comments", "commentCount"]),
        ("shares", &["shares", "shareCount"]),
    ],
    flat: &[],
    accepts: "M (or an S holding a JSON object) of N or S, exact beyond 2^64",
};
/// Publication time.
pub const POSTED_AT: Field = Field::simple(
    "posted at",
    &["postedAt"],
    &["postedAt", "createdAt", "created_at"],
    "ISO 8601, epoch seconds or milliseconds, N or S",
);
/// The tombstone flag.
pub const DELETED: Field = Field::simple("deleted", &["deleted"], &[], "BOOL (or a flag-like S or N)");
/// The platform blob.
pub const METADATA: Field = Field::simple(
    "metadata",
    &["metadata"],
    &[],
    "NULL, absent, a map, a JSON string, or a JSON string of a JSON string",
);

/// Every field, in the order the docs list them.
pub const FIELDS: [Field; 14] = [
    SCAN_ID,
    DATE_PARTITION,
    UPDATED_AT,
    CONTENT_ID,
    PLATFORM,
    URL,
    CAPTION,
    CREATOR,
    COMMUNITY,
    TAGS,
    STATS,
    POSTED_AT,
    DELETED,
    METADATA,
];

/// Tells whether a top-level attribute is one the parser reads; anything else is drift.
pub fn is_known(attribute: &str) -> bool {
    FIELDS.iter().any(|f| f.top.contains(&attribute) || f.flat.iter().any(|(_, a)| *a == attribute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sub_field_the_parser_asks_for_exists() {
        for (f, sub) in [
            (CREATOR, "id"),
            (CREATOR, "handle"),
            (CREATOR, "display name"),
            (CREATOR, "followers"),
            (CREATOR, "deleted"),
            (COMMUNITY, "id"),
            (COMMUNITY, "name"),
            (STATS, "views"),
            (STATS, "likes"),
            (STATS, "comments"),
            (STATS, "shares"),
        ] {
            assert!(!f.sub(sub).is_empty(), "{} has no sub-field {sub}", f.name);
        }
    }

    #[test]
    fn the_known_attributes_are_the_contract_and_nothing_else() {
        for a in
            ["scanId", "content_id", "postId", "creatorFollowers", "communityName", "metadata", "deleted"]
        {
            assert!(is_known(a), "{a}");
        }
        for a in ["mood", "author", "statistics", "hashtags"] {
            assert!(!is_known(a), "{a} is a metadata name, not a top-level attribute");
        }
    }
}
