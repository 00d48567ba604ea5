//! The shard tree, as pure logic: after each `DescribeStream`, which shards are new, which may
//! be read now (a child only once its parent was read to its end), and which the follower
//! was reading and the stream no longer has (their unread records are lost: a gap).

use super::Shard;
use std::collections::{BTreeMap, BTreeSet};

/// Where the follower stands with a shard (kept in PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardState {
    /// Being read (or not yet).
    Open,
    /// Closed and read to its end.
    Finished,
    /// Gone from the stream before it was read to its end (a gap was recorded).
    Lost,
}

impl ShardState {
    /// The name kept in `stream_shards.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Open => "open",
            ShardState::Finished => "finished",
            ShardState::Lost => "lost",
        }
    }

    /// Reads a stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        [ShardState::Open, ShardState::Finished, ShardState::Lost].into_iter().find(|x| x.as_str() == s)
    }

    /// Nothing more is read of the shard: its children may be.
    pub fn is_done(self) -> bool {
        self != ShardState::Open
    }
}

/// What the follower knows of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The shard it continues.
    pub parent: Option<String>,
    /// Where it stands.
    pub state: ShardState,
}

/// What to do after a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Listed and not known yet: to register (as open).
    pub new: Vec<Shard>,
    /// May be read now: open, listed, and its parent done (or never seen: it aged out
    /// before the follower started).
    pub readable: Vec<String>,
    /// Known open and no longer listed: lost before they were read to their end.
    pub lost: Vec<String>,
}

/// Plans the next reads from a listing and what is known.
pub fn plan(listed: &[Shard], known: &BTreeMap<String, Known>) -> Plan {
    let listed_ids: BTreeSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    let lost: Vec<String> = known
        .iter()
        .filter(|(id, k)| k.state == ShardState::Open && !listed_ids.contains(id.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    let done = |id: &str| {
        lost.iter().any(|l| l == id) || known.get(id).map_or(!listed_ids.contains(id), |k| k.state.is_done())
    };
    let new: Vec<Shard> = listed.iter().filter(|s| !known.contains_key(&s.id)).cloned().collect();
    let readable = listed
        .iter()
        .filter(|s| known.get(&s.id).is_none_or(|k| k.state == ShardState::Open))
        .filter(|s| s.parent.as_deref().is_none_or(done))
        .map(|s| s.id.clone())
        .collect();
    Plan { new, readable, lost }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>, closed: bool) -> Shard {
        Shard { id: id.into(), parent: parent.map(Into::into), closed }
    }

    fn known(pairs: &[(&str, Option<&str>, ShardState)]) -> BTreeMap<String, Known> {
        pairs
            .iter()
            .map(|(id, p, s)| (id.to_string(), Known { parent: p.map(Into::into), state: *s }))
            .collect()
    }

    #[test]
    fn a_child_is_read_only_after_its_parent_was_read_to_its_end() {
        let listed = [shard("a", None, true), shard("b", Some("a"), true), shard("c", Some("a"), false)];
        let p = plan(&listed, &BTreeMap::new());
        assert_eq!(p.new.len(), 3);
        assert_eq!(p.readable, ["a"], "the split's children wait for their parent");
        let k = known(&[
            ("a", None, ShardState::Finished),
            ("b", Some("a"), ShardState::Open),
            ("c", Some("a"), ShardState::Open),
        ]);
        assert_eq!(plan(&listed, &k).readable, ["b", "c"]);
    }

    #[test]
    fn a_parent_that_aged_out_before_the_follower_started_does_not_block_its_child() {
        let listed = [shard("d", Some("gone-long-ago"), false)];
        assert_eq!(plan(&listed, &BTreeMap::new()).readable, ["d"]);
    }

    #[test]
    fn an_open_shard_that_vanished_is_lost_and_its_children_go_on() {
        let listed = [shard("b", Some("a"), false)];
        let k = known(&[("a", None, ShardState::Open)]);
        let p = plan(&listed, &k);
        assert_eq!(p.lost, ["a"]);
        assert_eq!(p.readable, ["b"]);
        // A finished shard that aged out is no loss.
        let k = known(&[("a", None, ShardState::Finished)]);
        assert!(plan(&listed, &k).lost.is_empty());
    }
}
