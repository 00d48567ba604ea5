//! What a run prints for people when it ends: the summary and the exit status.

use crate::error::{EXIT_FAILED, EXIT_OK};
use crate::run::Outcome;
use crate::shutdown::Stop;

/// Prints a run's summary for people.
pub fn print(label: &str, o: &Outcome) {
    let s = &o.stats;
    let status = match &o.result {
        Ok(()) => "succeeded",
        Err(e) if e.kind() == crate::error::Kind::Cancelled => "stopped",
        Err(_) => "FAILED",
    };
    println!(
        "{label} {status} in {:.2} s: {} records read ({:.0} records/s), {} pages, {} outside the window",
        s.elapsed.as_secs_f64(),
        s.read,
        s.records_per_sec(),
        s.pages,
        s.skipped
    );
    if let Some(p) = &o.plan {
        println!(
            "  window: updatedAt after {}, partitions {} .. {}",
            p.after,
            p.days[0],
            p.days[p.days.len() - 1]
        );
    }
    let w = &s.written;
    println!(
        "  rows changed: creators {}, communities {}, tags {}, content {}, content_tags {}",
        w.creators, w.communities, w.tags, w.content, w.content_tags
    );
    if w.staged > 0 {
        println!(
            "  content rows staged: {} (a staged first load: folded into the tables when the job's last unit is done)",
            w.staged
        );
    }
    if let Some(after) = s.after_pages {
        println!(
            "  after the last page: {:.2} s (the staged rows' fold and the bulk load's keys, if this worker was the last)",
            after.as_secs_f64()
        );
    }
    if w.unchanged > 0 {
        println!(
            "  content rows already current: {} (found from keys and versions, not copied)",
            w.unchanged
        );
    }
    if s.removals > 0 {
        let unchanged = s.removals - s.ttl_removals_ignored.min(s.removals);
        let unchanged = unchanged.saturating_sub(w.removals_applied);
        println!(
            "  removals: {} read, {} tombstoned a row, {unchanged} changed nothing (an older scan event of a post, or applied before), {} TTL expiries left alone",
            s.removals, w.removals_applied, s.ttl_removals_ignored
        );
    }
    if let Some(missed) = s.missed_by_follower {
        println!(
            "  rows missed by the follower: {missed} (content rows this sync changed while a follower was alive)"
        );
    }
    let rejects: Vec<String> = s.rejects.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "  quarantined: {} new ({} rejected{}{})",
        w.quarantined,
        s.rejected(),
        if rejects.is_empty() { "" } else { ": " },
        rejects.join(", ")
    );
    let repairs: Vec<String> = s.repairs.fired().map(|(r, n)| format!("{} {n}", r.name())).collect();
    if !repairs.is_empty() {
        println!("  repaired: {}", repairs.join(", "));
    }
    if !s.drift.is_empty() {
        let d: Vec<String> = s.drift.iter().map(|((a, t), n)| format!("{a}:{t} {n}")).collect();
        println!("  schema drift: {}", d.join(", "));
    }
    if s.retries > 0 {
        println!("  page retries: {}", s.retries);
    }
    if !s.stamps.is_empty() {
        let forms: Vec<String> = s.stamps.iter().map(|(f, n)| format!("{} {n}", f.label())).collect();
        println!("  updatedAt forms: {}", forms.join(", "));
    }
    if let Some(items) = s.index_items {
        match s.read_amplification() {
            Some(a) => println!(
                "  index items read: {items} for {} in the window (read amplification {a:.2})",
                s.in_window()
            ),
            None => println!("  index items read: {items} for 0 in the window"),
        }
    }
    if let Some(units) = s.capacity_units {
        println!("  read capacity consumed: {units:.1} units (as DynamoDB reported it)");
    }
    for note in &o.notes {
        println!("  note: {note}");
    }
    if let Err(e) = &o.result {
        println!("  error: {e}");
        println!("  {}", committed(o));
    }
}

/// A run's summary for machines (the Lambda entry's response).
pub fn to_json(o: &Outcome) -> serde_json::Value {
    let s = &o.stats;
    let w = &s.written;
    serde_json::json!({
        "status": if o.result.is_ok() { "succeeded" } else { "failed" },
        "records_read": s.read,
        "pages": s.pages,
        "outside_window": s.skipped,
        "rows_changed": {
            "creators": w.creators,
            "communities": w.communities,
            "tags": w.tags,
            "content": w.content,
            "content_tags": w.content_tags,
        },
        "content_unchanged": w.unchanged,
        "quarantined": w.quarantined,
        "rejected": s.rejected(),
        "window": o.plan.as_ref().map(|p| serde_json::json!({
            "after": p.after.to_string(),
            "until": p.until.map(|u| u.to_string()),
        })),
        "elapsed_s": s.elapsed.as_secs_f64(),
        "error": o.result.as_ref().err().map(|e| e.to_string()),
    })
}

/// What a failed run leaves behind, in one line: pages committed and the checkpoint.
fn committed(o: &Outcome) -> String {
    let checkpoint = if o.plan.is_some() {
        "; the checkpoint did not move, so the next run re-processes the window"
    } else {
        ""
    };
    format!(
        "committed before the failure: {} pages, {} records (idempotent: running again is safe){checkpoint}",
        o.stats.pages, o.stats.read
    )
}

/// Maps a run's outcome to its exit status, printing the error of a failed run; a run
/// stopped by a signal exits with the signal's status (`stop`).
pub fn exit_status(o: &Outcome, stop: &Stop) -> u8 {
    match &o.result {
        Ok(()) => EXIT_OK,
        Err(e) if e.kind() == crate::error::Kind::Cancelled => {
            eprintln!("scansync: run cancelled: {e}; {}", committed(o));
            stop.exit_code().unwrap_or(EXIT_FAILED)
        }
        Err(e) => {
            eprintln!("scansync: run failed: {e}; {}", committed(o));
            EXIT_FAILED
        }
    }
}
