//! Parses the parse benchmark's 20,000 lines once, as the first argument says: `typed` (as the
//! pipeline reads an export: the typed path, else the general path), `general` (every line
//! through the general path) or `none` (only generate them). A run for callgrind, whose
//! instruction counts do not depend on the machine's load: `scripts/parse-instructions`.

use scansync_bench::{lines, parse_all};
use scansync_parse::export::{decode_export_line, read_export_line};

// The scansync binary runs on mimalloc; so does this count.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let lines = lines();
    let n = match std::env::args().nth(1).as_deref() {
        Some("none") => lines.len(),
        Some("typed") => parse_all(lines, read_export_line),
        Some("general") => parse_all(lines, decode_export_line),
        _ => {
            eprintln!("usage: parse_count typed|general|none");
            std::process::exit(2);
        }
    };
    println!("{n}");
}
