//! The parts of `docs/` that are rendered from the code, so the docs cannot drift: the
//! repair rules and reject reasons (from their enums), the flags of every subcommand (from
//! the CLI definition), and the tables of the canonical schema (checked against the
//! migrations). A test compares them with the committed docs; `SCANSYNC_BLESS_DOCS=1 cargo
//! test --lib docs` rewrites the generated blocks after a deliberate change.

use crate::cli::Cli;
use crate::parse::{RejectReason, Rule};
use clap::CommandFactory;

/// Renders the table of fields and the names they arrive under, from the parser's own
/// alias table (`parse/src/record/fields.rs`).
pub fn fields() -> String {
    let code = |names: &[&str]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let mut out = String::from(
        "| field | attribute names (first present wins) | inside its map | metadata fallback | accepted |\n|---|---|---|---|---|\n",
    );
    for f in crate::parse::fields::FIELDS {
        let mut top = code(f.top);
        if !f.flat.is_empty() {
            let flat: Vec<&str> = f.flat.iter().map(|(_, a)| *a).collect();
            top.push_str(&format!("; flat: {}", code(&flat)));
        }
        let inside: Vec<String> =
            f.inside.iter().map(|(sub, names)| format!("{sub}: {}", code(names))).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            f.name,
            top,
            if inside.is_empty() { "".into() } else { inside.join("; ") },
            code(f.metadata),
            f.accepts
        ));
    }
    out.push_str(
        "| anything else | kept in `content.extra` by name and counted in `schema_drift` | | | any |\n",
    );
    out
}

/// Renders the table of repair rules, by the name the run ledger uses.
pub fn rules() -> String {
    let mut out = String::from("| rule (`sync_runs.repairs`) | what it repairs |\n|---|---|\n");
    for r in Rule::ALL {
        out.push_str(&format!("| `{}` | {} |\n", r.name(), r.description()));
    }
    out
}

/// Renders the table of reject reasons, by the code the quarantine uses.
pub fn rejects() -> String {
    let mut out = String::from("| reason (`quarantine.reason`) | when |\n|---|---|\n");
    for r in RejectReason::ALL {
        out.push_str(&format!("| `{}` | {} |\n", r.code(), r.description()));
    }
    out
}

/// Renders `scansync <command> --help` for every subcommand, as the binary prints it
/// (environment values hidden, so the docs do not depend on who renders them).
pub fn flags() -> String {
    let mut cmd = Cli::command().term_width(100).max_term_width(100);
    cmd.build();
    let mut out = String::new();
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    for name in names.iter().filter(|n| *n != "help") {
        let sub = cmd.find_subcommand_mut(name).expect("listed above");
        let mut sub = sub.clone().mut_args(|a| a.hide_env_values(true));
        let help = sub.render_long_help().to_string();
        let help: Vec<&str> = help.lines().map(str::trim_end).collect();
        out.push_str(&format!("### `scansync {name}`\n\n```text\n{}\n```\n\n", help.join("\n").trim_end()));
    }
    out
}

/// The tables the migrations create, in order.
pub fn tables() -> Vec<String> {
    crate::schema::MIGRATIONS
        .iter()
        .flat_map(|(_, sql)| sql.lines())
        .filter_map(|l| l.trim().strip_prefix("create table if not exists "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::PathBuf;

    fn docs_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs")
    }

    /// Checks (or, with SCANSYNC_BLESS_DOCS=1, rewrites) the block `name` of `file`.
    fn generated(file: &str, name: &str, content: &str) {
        let path = docs_dir().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (start, end) = (format!("<!-- generated: {name} -->\n"), "<!-- end generated -->");
        let a = text.find(&start).unwrap_or_else(|| panic!("{file} has no block {start:?}")) + start.len();
        let b = a + text[a..].find(end).unwrap_or_else(|| panic!("{file}: block {name} is not closed"));
        if text[a..b] == *content {
            return;
        }
        if std::env::var_os("SCANSYNC_BLESS_DOCS").is_some() {
            std::fs::write(&path, format!("{}{content}{}", &text[..a], &text[b..])).unwrap();
            return;
        }
        panic!(
            "{file}: the generated block {name} differs from the code; if the change is deliberate, run \
             SCANSYNC_BLESS_DOCS=1 cargo test --lib docs and commit the docs\n--- docs\n{}\n--- code\n{content}",
            &text[a..b]
        );
    }

    #[test]
    fn docs_list_every_repair_rule_and_reject_reason_as_the_code_names_them() {
        generated("contract.md", "fields", &fields());
        generated("contract.md", "rules", &rules());
        generated("contract.md", "rejects", &rejects());
    }

    #[test]
    fn docs_show_every_flag_as_the_binary_prints_it() {
        generated("flags.md", "flags", &flags());
    }

    #[test]
    fn docs_describe_every_table_the_migrations_create() {
        let contract = std::fs::read_to_string(docs_dir().join("contract.md")).unwrap();
        let tables = tables();
        assert!(tables.len() >= 8, "{tables:?}");
        for t in tables {
            assert!(
                contract.contains(&format!("### `{t}`")),
                "docs/contract.md has no section for table {t}"
            );
        }
    }

    /// The `scansync …` command lines of a markdown text's code blocks, as words: `\`
    /// continuations joined, leading `VAR=value` assignments, comments, pipes and
    /// redirections dropped.
    fn commands_in(text: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let (mut in_block, mut in_code) = (false, false);
        let mut pending = String::new();
        for line in text.lines() {
            // Shell blocks only (```sh, ```bash or unmarked): ```text blocks show output.
            if let Some(lang) = line.trim_start().strip_prefix("```") {
                in_code = !in_block && matches!(lang.trim(), "" | "sh" | "bash" | "shell");
                in_block = !in_block;
                continue;
            }
            if !in_code {
                continue;
            }
            let line = line.trim();
            if let Some(cont) = line.strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            let full = std::mem::take(&mut pending) + line;
            let words = shell_words(&full);
            let Some(at) = words.iter().position(|w| w == "scansync" || w.ends_with("/scansync")) else {
                continue;
            };
            if words[..at].iter().any(|w| !w.contains('=') && w != "--") {
                continue; // another program's line (`loadgen … --scansync target/…/scansync`)
            }
            out.push(words[at..].to_vec());
        }
        out
    }

    /// Splits a shell line into words (quotes honoured), up to a comment, a pipe, a
    /// redirection or `&&`.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut cur: Option<String> = None;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' | '"' => {
                    let w = cur.get_or_insert_with(String::new);
                    for d in chars.by_ref() {
                        if d == c {
                            break;
                        }
                        w.push(d);
                    }
                }
                ' ' | '\t' => words.extend(cur.take()),
                '#' if cur.is_none() => break,
                '|' | '>' | '&' | ';' => break,
                _ => cur.get_or_insert_with(String::new).push(c),
            }
        }
        words.extend(cur);
        words
    }

    #[test]
    fn every_scansync_command_the_docs_show_is_one_the_binary_accepts() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("README.md")];
        files.extend(std::fs::read_dir(docs_dir()).unwrap().map(|e| e.unwrap().path()));
        let mut checked = 0;
        for file in files.iter().filter(|f| f.extension().is_some_and(|x| x == "md")) {
            let text = std::fs::read_to_string(file).unwrap();
            for words in commands_in(&text) {
                let mut argv = words.clone();
                argv[0] = "scansync".into();
                match Cli::try_parse_from(&argv) {
                    Ok(_) => checked += 1,
                    Err(e)
                        if matches!(
                            e.kind(),
                            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                        ) => {}
                    Err(e) => panic!("{}: `{}` is refused: {e}", file.display(), words.join(" ")),
                }
            }
        }
        assert!(checked >= 10, "only {checked} commands found: the scan is broken");
    }

    #[test]
    fn no_file_of_the_repository_points_outside_it() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut stack = vec![root.clone()];
        let needle = ["..", "/shared"].concat();
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with('.') || name == "target" || name == "node_modules" {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(text) = std::fs::read_to_string(&p) {
                    assert!(!text.contains(&needle), "{} points outside the repository", p.display());
                }
            }
        }
    }
}
