//! A deterministic, seeded generator of realistic, dirty scan records.
//!
//! Records look like what upstream writers produce (docs/contract.md): every field-name variant,
//! every container form, every timestamp form, with a configurable share of the dirty cases
//! of docs/contract.md, updates of existing content, tombstones, drifted attributes and records
//! beyond repair. Creators, communities and tags are Zipf-skewed, as social data is.
//! The same seed and mix always give the same records.

use scansync_parse::attr::{write_item_dynamodb_json, Attr, Item};
use scansync_parse::time::Timestamp;

/// The shares of each kind of record, each in 0..=1.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Records that are a new version of content already generated.
    pub update_rate: f64,
    /// Updates that are tombstones.
    pub tombstone_rate: f64,
    /// Records carrying one dirty case of docs/contract.md.
    pub dirty_rate: f64,
    /// Records carrying an attribute outside the contract.
    pub drift_rate: f64,
    /// Records beyond repair (no content id or no platform).
    pub reject_rate: f64,
    /// How writers stamp `updatedAt`.
    pub stamps: Stamps,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            update_rate: 0.2,
            tombstone_rate: 0.05,
            dirty_rate: 0.2,
            drift_rate: 0.02,
            reject_rate: 0.002,
            stamps: Stamps::Default,
        }
    }
}

/// How the writers of a generated load stamp `updatedAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamps {
    /// Four UTC precisions and one writer at New York time (`-05:00`), a fifth each.
    Default,
    /// Every writer stamps UTC (`Z` or `+00:00`, `T` or a space): the case for
    /// `--offset-margin 0`.
    Utc,
    /// Every form seen in the wild: UTC precisions, a space separator, and writers at
    /// `-05:00`, `-08:00`, `-12:00` (the most negative offset in use) and `+05:30`.
    Mixed,
}

/// Skew and cardinality of the entities.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Distinct creators.
    pub creators: usize,
    /// Distinct communities.
    pub communities: usize,
    /// Distinct tags.
    pub tags: usize,
    /// Zipf exponent (about 1 for social data).
    pub zipf_s: f64,
}

impl Default for Shape {
    fn default() -> Self {
        Self { creators: 100_000, communities: 10_000, tags: 50_000, zipf_s: 1.05 }
    }
}

/// One generated record and what a reconciler needs to know about it.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The item, as written to DynamoDB or an export.
    pub item: Item,
    /// (platform, external id) as scansync will key it; `None` for records beyond repair.
    pub key: Option<(String, String)>,
    /// The instant of the `updatedAt` as written. Some forms truncate to the second, so a
    /// later version can carry an earlier instant: compare versions by this and the scan id,
    /// as scansync does, never by generation order.
    pub updated_at: Timestamp,
    /// The scan id.
    pub scan_id: String,
    /// A tombstone.
    pub deleted: bool,
}

/// Samples ranks 0..n with probability ∝ 1/(rank+1)^s, by binary search on the CDF.
#[derive(Debug, Clone)]
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n.max(1));
        let mut total = 0.0;
        for k in 0..n.max(1) {
            total += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|x| *x /= total);
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let u = rng.f64();
        self.cdf.partition_point(|p| *p < u).min(self.cdf.len() - 1)
    }
}

const PLATFORMS: [&str; 5] = ["tiktok", "instagram", "youtube", "x", "reddit"];
const WORDS: [&str; 24] = [
    "launch",
    "review",
    "unboxing",
    "tutorial",
    "live",
    "recap",
    "highlights",
    "behind",
    "scenes",
    "daily",
    "vlog",
    "drop",
    "collab",
    "challenge",
    "reaction",
    "story",
    "update",
    "podcast",
    "clip",
    "thread",
    "breaking",
    "trend",
    "guide",
    "tips",
];

/// The generator.
pub struct Generator {
    rng: fastrand::Rng,
    mix: Mix,
    creators: Zipf,
    communities: Zipf,
    tags: Zipf,
    seq: u64,
    /// Content generated so far: (platform index, numeric id, latest version number).
    content: Vec<(usize, u64, u32)>,
}

impl Generator {
    /// Creates a generator; equal seeds, mixes and shapes give equal records.
    pub fn new(seed: u64, mix: Mix, shape: Shape) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            mix,
            creators: Zipf::new(shape.creators, shape.zipf_s),
            communities: Zipf::new(shape.communities, shape.zipf_s),
            tags: Zipf::new(shape.tags, shape.zipf_s),
            seq: 0,
            content: Vec::new(),
        }
    }

    /// Returns the next record, stamped `at`. The caller keeps `at` non-decreasing so
    /// every update is newer than the version it replaces.
    pub fn next_record(&mut self, at: Timestamp) -> Generated {
        self.seq += 1;
        let scan_id = format!("scan-{:012}", self.seq);
        let update = !self.content.is_empty() && self.rng.f64() < self.mix.update_rate;
        let (platform, id, version) = if update {
            let i = self.rng.usize(..self.content.len());
            self.content[i].2 += 1;
            self.content[i]
        } else {
            let c = (self.rng.usize(..PLATFORMS.len()), self.content.len() as u64 + 1, 0);
            self.content.push(c);
            c
        };
        let deleted = update && self.rng.f64() < self.mix.tombstone_rate;
        let mut item = Item::default();
        let s = |v: String| Attr::S(v);
        item.insert("scanId".into(), s(scan_id.clone()));
        item.insert("datePartition".into(), s(at.day().to_string()));
        let stamp = self.stamp(at);
        let updated_at = Timestamp::parse(&stamp).expect("generated stamps parse");
        item.insert("updatedAt".into(), s(stamp));
        let platform_name = PLATFORMS[platform];
        let platform_text = match self.rng.u8(..10) {
            0 => platform_name.to_uppercase(),
            1 => format!(" {platform_name} "),
            _ => platform_name.to_string(),
        };
        // Numeric ids beyond 2^53 on some platforms, as the platforms issue them.
        let numeric = platform == 2 || platform == 3;
        let external_id =
            if numeric { (9_007_199_254_740_993u64 + id).to_string() } else { format!("p{id:x}") };
        let id_attr =
            if numeric && self.rng.bool() { Attr::N(external_id.clone()) } else { s(external_id.clone()) };
        let id_field = ["contentId", "content_id", "postId"][self.rng.usize(..3)];
        let reject = self.rng.f64() < self.mix.reject_rate;
        let key = if reject {
            if self.rng.bool() {
                item.insert("platform".into(), s(platform_text));
            } else {
                item.insert(id_field.into(), id_attr);
            }
            None
        } else {
            item.insert("platform".into(), s(platform_text));
            item.insert(id_field.into(), id_attr);
            Some((platform_name.to_string(), external_id.clone()))
        };
        if deleted {
            item.insert("deleted".into(), Attr::Bool(true));
        }
        let url = format!("https://{platform_name}.example.com/p/{external_id}");
        item.insert(if self.rng.bool() { "contentUrl" } else { "url" }.into(), s(url));
        item.insert("caption".into(), s(self.caption(version)));
        self.creator(&mut item, platform);
        self.community(&mut item);
        self.tags(&mut item);
        self.stats(&mut item, version);
        item.insert("postedAt".into(), self.posted_at(at));
        item.insert("metadata".into(), self.metadata(platform_name, version));
        if self.rng.f64() < self.mix.drift_rate {
            let (name, v) = match self.rng.u8(..3) {
                0 => ("sentiment", Attr::N(format!("0.{}", self.rng.u16(..1000)))),
                1 => ("language", s(["en", "es", "pt", "ja"][self.rng.usize(..4)].into())),
                _ => (
                    "moderation",
                    Attr::M([("flagged".to_string(), Attr::Bool(self.rng.bool()))].into_iter().collect()),
                ),
            };
            item.insert(name.into(), v);
        }
        if self.rng.f64() < self.mix.dirty_rate {
            self.dirty(&mut item);
        }
        if key.is_none() {
            // Beyond repair means beyond repair: the metadata must not supply the field.
            item.insert("metadata".into(), Attr::Null);
        }
        Generated { item, key, updated_at, scan_id, deleted }
    }

    fn stamp(&mut self, at: Timestamp) -> String {
        let iso = at.to_iso(); // YYYY-MM-DDTHH:MM:SS.ffffffZ
        let local = |minutes: i64| {
            let l = at.add_micros(minutes * 60_000_000).to_iso();
            let sign = if minutes < 0 { '-' } else { '+' };
            let m = minutes.unsigned_abs();
            format!("{}{sign}{:02}:{:02}", &l[..23], m / 60, m % 60)
        };
        match self.mix.stamps {
            Stamps::Default => {}
            Stamps::Utc => {
                return match self.rng.u8(..4) {
                    0 => format!("{}Z", &iso[..23]),
                    1 => iso,
                    2 => format!("{}+00:00", &iso[..23]),
                    _ => format!("{} {}+00:00", &iso[..10], &iso[11..23]),
                }
            }
            Stamps::Mixed => {
                return match self.rng.u8(..8) {
                    0 => format!("{}Z", &iso[..19]),
                    1 => iso,
                    2 => format!("{}+00:00", &iso[..23]),
                    3 => format!("{} {}+00:00", &iso[..10], &iso[11..23]),
                    4 => local(-300),
                    5 => local(-480).replacen('T', " ", 1),
                    6 => local(-720),
                    _ => local(330),
                }
            }
        }
        match self.rng.u8(..5) {
            0 => format!("{}Z", &iso[..19]),
            1 => format!("{}Z", &iso[..23]),
            2 => iso,
            3 => format!("{}+00:00", &iso[..23]),
            _ => {
                // The same instant in New York time (fixed -05:00), as one writer does.
                let local = at.add_micros(-5 * 3_600_000_000).to_iso();
                format!("{}-05:00", &local[..23])
            }
        }
    }

    fn caption(&mut self, version: u32) -> String {
        let n = 8 + self.rng.usize(..16);
        let mut c = String::with_capacity(160);
        for i in 0..n {
            if i > 0 {
                c.push(' ');
            }
            c.push_str(WORDS[self.rng.usize(..WORDS.len())]);
        }
        c.push_str(&format!(" (edit {version}) 🎬"));
        c
    }

    fn creator(&mut self, item: &mut Item, platform: usize) {
        let k = self.creators.sample(&mut self.rng);
        let followers = if k < 10 {
            format!("{}", 18_446_744_073_709_551_616u128 + k as u128)
        } else {
            format!("{}", 1_000_000 / (k + 1))
        };
        let handle = format!("Creator_{k}");
        if self.rng.u8(..3) > 0 {
            item.insert(
                "creator".into(),
                Attr::M(
                    [
                        ("id".to_string(), Attr::S(format!("{}-c{k}", PLATFORMS[platform]))),
                        ("handle".to_string(), Attr::S(handle)),
                        ("displayName".to_string(), Attr::S(format!("Creator {k}"))),
                        ("followers".to_string(), Attr::N(followers)),
                    ]
                    .into_iter()
                    .collect(),
                ),
            );
        } else {
            item.insert("creatorId".into(), Attr::S(format!("{}-c{k}", PLATFORMS[platform])));
            item.insert("creatorHandle".into(), Attr::S(handle));
        }
    }

    fn community(&mut self, item: &mut Item) {
        let k = self.communities.sample(&mut self.rng);
        if self.rng.bool() {
            item.insert(
                "community".into(),
                Attr::M(
                    [
                        ("id".to_string(), Attr::S(format!("g{k}"))),
                        ("name".to_string(), Attr::S(format!("Group {k}"))),
                    ]
                    .into_iter()
                    .collect(),
                ),
            );
        } else {
            item.insert("communityId".into(), Attr::S(format!("g{k}")));
            item.insert("communityName".into(), Attr::S(format!("Group {k}")));
        }
    }

    fn tags(&mut self, item: &mut Item) {
        let n = 1 + self.rng.usize(..4);
        let tags: Vec<String> = (0..n)
            .map(|_| {
                let k = self.tags.sample(&mut self.rng);
                if self.rng.bool() {
                    format!("#Tag{k}")
                } else {
                    format!("tag{k}")
                }
            })
            .collect();
        let attr = match self.rng.u8(..4) {
            0 => {
                let mut set = tags.clone();
                set.sort();
                set.dedup();
                Attr::Ss(set)
            }
            1 => Attr::L(tags.iter().cloned().map(Attr::S).collect()),
            2 => Attr::S(serde_json::to_string(&tags).expect("strings serialise")),
            _ => Attr::S(tags.join(", ")),
        };
        item.insert("tags".into(), attr);
    }

    fn stats(&mut self, item: &mut Item, version: u32) {
        let views = 1000 * (u64::from(version) + 1) + self.rng.u64(..1_000_000);
        let mut m: Item = Item::default();
        m.insert("views".into(), Attr::N(views.to_string()));
        m.insert(
            "likes".into(),
            if self.rng.u8(..4) == 0 {
                Attr::S((views / 10).to_string())
            } else {
                Attr::N((views / 10).to_string())
            },
        );
        m.insert("comments".into(), Attr::N((views / 100).to_string()));
        m.insert("shares".into(), Attr::N((views / 1000).to_string()));
        item.insert("stats".into(), Attr::M(m));
    }

    fn posted_at(&mut self, at: Timestamp) -> Attr {
        let posted = at.add_micros(-(self.rng.i64(0..30 * 86_400) * 1_000_000));
        let secs = posted.0.div_euclid(1_000_000);
        match self.rng.u8(..3) {
            0 => Attr::S(posted.to_iso()),
            1 => Attr::N(secs.to_string()),
            _ => Attr::N((secs * 1000).to_string()),
        }
    }

    fn metadata(&mut self, platform: &str, version: u32) -> Attr {
        let json = format!(
            r#"{{"platform":"{platform}","lang":"en","region":"{}","duration_ms":{},"music":{{"id":"m{}","title":"Track {}"}},"effects":["e{}","e{}"],"score":{},"version":{version},"flags":{{"ad":{},"pinned":false}}}}"#,
            ["us", "br", "jp", "de"][self.rng.usize(..4)],
            self.rng.u32(..600_000),
            self.rng.u32(..10_000),
            self.rng.u32(..10_000),
            self.rng.u8(..50),
            self.rng.u8(..50),
            self.rng.u64(..u64::MAX),
            self.rng.bool(),
        );
        match self.rng.u8(..10) {
            0 => Attr::Null,
            1 | 2 => Attr::M(
                [
                    ("lang".to_string(), Attr::S("en".into())),
                    ("duration_ms".to_string(), Attr::N(self.rng.u32(..600_000).to_string())),
                ]
                .into_iter()
                .collect(),
            ),
            _ => Attr::S(json),
        }
    }

    fn dirty(&mut self, item: &mut Item) {
        let caption = match item.get("caption") {
            Some(Attr::S(c)) => c.clone(),
            _ => String::new(),
        };
        let meta = match item.get("metadata") {
            Some(Attr::S(m)) => m.clone(),
            _ => r#"{"k":"v"}"#.to_string(),
        };
        match self.rng.u8(..11) {
            0 => item.insert("caption".into(), Attr::S(format!("{caption}\u{7}\u{1b}[0m\r\n"))),
            1 => item.insert("caption".into(), Attr::S(format!("{caption}\u{0}"))),
            2 => item.insert("caption".into(), Attr::S(format!("{caption} \\ud83d"))),
            3 => item.insert("caption".into(), Attr::S(format!("Cafe\u{301} {caption}"))),
            4 => item.insert("metadata".into(), Attr::S(format!("\u{feff}{meta}"))),
            5 => item
                .insert("metadata".into(), Attr::S(serde_json::to_string(&meta).expect("string serialises"))),
            6 => item.insert("metadata".into(), Attr::S(meta.replacen("\"en\"", "\"e\\u0000n\"", 1))),
            7 => item.insert("metadata".into(), Attr::S(meta.replacen("\"en\"", "\"\\ud83d\"", 1))),
            8 => item.insert(
                "stats".into(),
                Attr::M([("views".to_string(), Attr::S("n/a".into()))].into_iter().collect()),
            ),
            9 => item.insert(
                "stats".into(),
                Attr::M(
                    [("views".to_string(), Attr::N("123456789012345678901234567890".into()))]
                        .into_iter()
                        .collect(),
                ),
            ),
            _ => item.insert("postedAt".into(), Attr::S("sometime last week".into())),
        };
    }
}

/// Renders an item as a line of a DynamoDB export (`{"Item": {…}}`).
pub fn export_line(item: &Item, out: &mut String) {
    out.push_str("{\"Item\":");
    write_item_dynamodb_json(item, out);
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_seeds_give_equal_records() {
        let at = Timestamp::parse("2026-11-26T00:00:00Z").unwrap();
        let mut a = Generator::new(7, Mix::default(), Shape::default());
        let mut b = Generator::new(7, Mix::default(), Shape::default());
        for _ in 0..200 {
            assert_eq!(a.next_record(at).item, b.next_record(at).item);
        }
    }

    #[test]
    fn records_are_about_a_kilobyte_and_mostly_parse() {
        let at = Timestamp::parse("2026-11-26T00:00:00Z").unwrap();
        let mut g = Generator::new(1, Mix::default(), Shape::default());
        let (mut bytes, mut ok) = (0, 0);
        for _ in 0..1000 {
            let r = g.next_record(at);
            let mut line = String::new();
            export_line(&r.item, &mut line);
            bytes += line.len();
            let parsed =
                scansync_parse::parse_item(&r.item, "", &mut Default::default(), &mut Default::default());
            assert_eq!(parsed.is_ok(), r.key.is_some(), "{:?}", r.item);
            if let Ok(p) = parsed {
                assert_eq!(Some((p.platform, p.external_id)), r.key);
                ok += 1;
            }
        }
        assert!((700..1400).contains(&(bytes / 1000)), "average record {} bytes", bytes / 1000);
        assert!(ok > 990);
    }

    #[test]
    fn the_typed_path_reads_most_generated_lines_and_each_exactly_as_the_general_path() {
        let at = Timestamp::parse("2026-11-26T00:00:00Z").unwrap();
        for stamps in [Stamps::Default, Stamps::Utc, Stamps::Mixed] {
            let mut g = Generator::new(11, Mix { stamps, ..Mix::default() }, Shape::default());
            let mut typed = 0;
            for i in 0..3000 {
                let mut line = String::new();
                export_line(&g.next_record(at.add_micros(i * 1000)).item, &mut line);
                match scansync_parse::export::check_against_general_path(line.as_bytes()) {
                    Ok(read) => typed += usize::from(read),
                    Err(e) => panic!("{e}\nline: {line}"),
                }
            }
            // Drift (2 %) and records beyond repair take the general path: 2,951 of 3,000 are
            // read typed.
            assert!(typed > 2900, "{stamps:?}: the typed path read only {typed} of 3000 lines");
        }
    }

    #[test]
    fn a_page_read_with_the_typed_path_is_the_page_the_general_path_reads() {
        use scansync_parse::export::{decode_export_line, read_export_line};
        use scansync_parse::{parse_page, Filter};
        let start = Timestamp::parse("2026-11-26T00:00:00Z").unwrap();
        let mut g = Generator::new(5, Mix { stamps: Stamps::Mixed, ..Mix::default() }, Shape::default());
        let lines: Vec<Vec<u8>> = (0..2000)
            .map(|i| {
                let mut line = String::new();
                export_line(&g.next_record(start.add_micros(i * 60_000_000)).item, &mut line);
                line.into_bytes()
            })
            .collect();
        // A window that keeps some records and skips others.
        let filter = Filter { after: Some(start.add_micros(600 * 60_000_000)), ..Filter::default() };
        let typed = parse_page("p", lines.iter().cloned().map(read_export_line).collect(), &filter);
        let general = parse_page("p", lines.into_iter().map(decode_export_line).collect(), &filter);
        assert!(
            typed.skipped > 100 && typed.records.len() > 100,
            "{} {}",
            typed.skipped,
            typed.records.len()
        );
        assert_eq!(typed.records, general.records);
        assert_eq!(typed.rejects, general.rejects);
        assert_eq!(typed.repairs, general.repairs);
        assert_eq!(typed.drift, general.drift);
        assert_eq!((typed.read, typed.skipped), (general.read, general.skipped));
        assert_eq!(typed.stamps, general.stamps);
    }

    #[test]
    fn zipf_puts_most_weight_on_the_first_ranks() {
        let z = Zipf::new(10_000, 1.05);
        let mut rng = fastrand::Rng::with_seed(3);
        let top = (0..10_000).filter(|_| z.sample(&mut rng) < 100).count();
        assert!(top > 4000, "{top}");
    }
}
