//! A verify's report, for people and for machines.

use super::tally::{Counts, Found, Table};
use super::VerifyReport;
use crate::write::postgres::Verdict;
use serde_json::{json, Value};

/// The verdicts as printed, in the order of the columns.
const COLUMNS: [Verdict; 5] =
    [Verdict::Same, Verdict::Missing, Verdict::Stale, Verdict::Diverged, Verdict::Ahead];

fn counts_json(c: &Counts) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("keys".into(), c.keys().into());
    for v in COLUMNS {
        m.insert(v.name().into(), c.get(v).into());
    }
    m.insert("divergent".into(), c.divergent().into());
    Value::Object(m)
}

fn row(label: &str, c: &Counts) -> String {
    let mut s = format!("  {label:<12} {:>9}", c.keys());
    for v in COLUMNS {
        s.push_str(&format!(" {:>9}", c.get(v)));
    }
    s
}

fn first_json(found: &Found) -> Value {
    let mut tables = serde_json::Map::new();
    for ((table, verdict), keys) in &found.first {
        let t = tables.entry(table.name()).or_insert_with(|| json!({}));
        t[verdict.name()] = json!(keys);
    }
    Value::Object(tables)
}

impl VerifyReport {
    /// The report for people: a line per day, the totals, the first divergent keys, the
    /// read cost and the verdict.
    pub fn to_text(&self) -> String {
        let s = &self.stats;
        let range = match self.days {
            Some((a, b)) => format!("days {a} .. {b}"),
            None => "every day the export holds".to_string(),
        };
        let mut out = format!(
            "verify of {}, {range}: {} records read in {:.2} s ({:.0} records/s)\n",
            self.source,
            s.read,
            s.elapsed.as_secs_f64(),
            s.records_per_sec()
        );
        let mut header = format!("  {:<12} {:>9}", "content", "keys");
        for v in COLUMNS {
            header.push_str(&format!(" {:>9}", v.name()));
        }
        out.push_str(&header);
        out.push('\n');
        for (day, c) in &self.found.days {
            out.push_str(&row(&day.to_string(), c));
            out.push('\n');
        }
        out.push_str(&row("total", &self.found.content));
        out.push('\n');
        out.push_str(&row("creators", &self.found.creators));
        out.push('\n');
        out.push_str(&row("communities", &self.found.communities));
        out.push('\n');
        for ((table, verdict), keys) in &self.found.first {
            let n = match table {
                Table::Content => self.found.content.get(*verdict),
                Table::Creators => self.found.creators.get(*verdict),
                Table::Communities => self.found.communities.get(*verdict),
            };
            let more = if n as usize > keys.len() {
                format!(" (first {} of {n})", keys.len())
            } else {
                String::new()
            };
            out.push_str(&format!("  {} {}{more}: {}\n", table.name(), verdict.name(), keys.join(", ")));
        }
        match (s.index_items, s.capacity_units) {
            (Some(items), Some(units)) => out.push_str(&format!(
                "  read cost: {items} index items, {units:.1} read capacity units (as DynamoDB reported them)\n"
            )),
            (Some(items), None) => out.push_str(&format!(
                "  read cost: {items} index items (the server reported no read capacity; DynamoDB charges 0.5 unit per 4 KB a query reads, eventually consistent)\n"
            )),
            _ => {}
        }
        if s.rejected() > 0 {
            out.push_str(&format!(
                "  {} records could not be parsed and were not compared (a sync quarantines them)\n",
                s.rejected()
            ));
        }
        if let Some(r) = &self.repair {
            let w = &r.written;
            out.push_str(&format!(
                "  repair: {} records written in {:.2} s (rows changed: content {}, creators {}, communities {}, content_tags {}; {} diverged rows rewritten); compared again: {} divergent\n",
                r.records,
                r.elapsed.as_secs_f64(),
                w.content,
                w.creators,
                w.communities,
                w.content_tags,
                r.demoted,
                r.after.divergent()
            ));
        }
        let all = self.found.all();
        let divergent = all.divergent();
        let verdict = if divergent == 0 {
            "verify: 0 divergent: the store holds what the source holds".to_string()
        } else if self.repair.is_some() {
            format!(
                "verify: {divergent} divergent ({} missing, {} stale, {} diverged), {} left after the repair",
                all.get(Verdict::Missing),
                all.get(Verdict::Stale),
                all.get(Verdict::Diverged),
                self.unrepaired()
            )
        } else {
            format!(
                "verify: {divergent} divergent ({} missing, {} stale, {} diverged): run the same command with --repair to write the source's newest records of these keys",
                all.get(Verdict::Missing),
                all.get(Verdict::Stale),
                all.get(Verdict::Diverged)
            )
        };
        out.push_str(&verdict);
        out
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        let s = &self.stats;
        let days: Vec<Value> = self
            .found
            .days
            .iter()
            .map(|(d, c)| {
                let mut v = counts_json(c);
                v["day"] = json!(d.to_string());
                v
            })
            .collect();
        let repair = self.repair.as_ref().map(|r| {
            json!({
                "records": r.records,
                "seconds": r.elapsed.as_secs_f64(),
                "rows_changed": {
                    "content": r.written.content, "creators": r.written.creators,
                    "communities": r.written.communities, "content_tags": r.written.content_tags,
                },
                "diverged_rewritten": r.demoted,
                "after": {
                    "content": counts_json(&r.after.content),
                    "creators": counts_json(&r.after.creators),
                    "communities": counts_json(&r.after.communities),
                    "divergent": r.after.divergent(),
                },
            })
        });
        json!({
            "source": self.source,
            "from": self.days.map(|d| d.0.to_string()),
            "to": self.days.map(|d| d.1.to_string()),
            "records_read": s.read,
            "rejected": s.rejected(),
            "seconds": s.elapsed.as_secs_f64(),
            "days": days,
            "content": counts_json(&self.found.content),
            "creators": counts_json(&self.found.creators),
            "communities": counts_json(&self.found.communities),
            "first": first_json(&self.found),
            "read_cost": { "index_items": s.index_items, "capacity_units": s.capacity_units },
            "divergent": self.found.divergent(),
            "repair": repair,
            "unrepaired": self.unrepaired(),
            "run_id": self.run_id,
            "exit_code": self.exit_code(),
        })
        .to_string()
    }
}
