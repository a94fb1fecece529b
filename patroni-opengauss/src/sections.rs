//! The "title / name : value" block layout shared by `gs_ctl query` and `gs_ctl querybuild`.
//!
//! Normal query output indents fields with a TAB and writes `name<pad> : value`; the state-file
//! fallback and `querybuild` indent with 8 spaces and write `name<pad>: value`. A blank line ends
//! a row, `No information` means zero rows, and a value may continue on following lines (libpq
//! error texts), so one generic reader serves all of them.

use crate::text::strip_prefix;

/// How the fields were indented, which tells where the values came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// TAB-indented: live values from the server's SQL functions.
    Sql,
    /// 8-space indented: values from the `gaussdb.state` file because SQL failed.
    StateFile,
}

/// One titled block with its rows, each row a list of `(name, value)` in print order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// The title without its colon (`HA state`, `Senders info`, `Receiver info`, `Build state`).
    pub title: String,
    /// The rows; empty when the block said `No information`.
    pub rows: Vec<Vec<(String, String)>>,
}

/// All blocks of one output, plus the layout seen and the lines that belong to no block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sections {
    /// Blocks in print order.
    pub sections: Vec<Section>,
    /// The layout of the first field line, if any.
    pub layout: Option<Layout>,
    /// Lines outside any block (the first `gs_ctl query ,datadir is` line, error messages), prefix removed.
    pub other: Vec<String>,
}

impl Sections {
    /// The block with this title.
    pub fn get(&self, title: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.title == title)
    }
}

/// Looks a field up in one row.
pub fn field<'a>(row: &'a [(String, String)], name: &str) -> Option<&'a str> {
    row.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

const TITLES: [&str; 5] = [
    "HA state",
    "Senders info",
    "Receiver info",
    "Build state",
    "Paxos replication info",
];

/// Reads every block of a query-style output.
pub fn parse_sections(output: &str) -> Sections {
    let mut out = Sections::default();
    let mut current: Option<Section> = None;
    let mut row: Vec<(String, String)> = Vec::new();
    let flush_row = |current: &mut Option<Section>, row: &mut Vec<(String, String)>| {
        if let Some(sec) = current.as_mut() {
            if !row.is_empty() {
                sec.rows.push(std::mem::take(row));
            }
        }
        row.clear();
    };
    for physical in output.split('\n') {
        let physical = physical.trim_end_matches(['\r', ' ']);
        let line = strip_prefix(physical);
        let trimmed = line.trim();
        if let Some(title) = trimmed
            .strip_suffix(':')
            .filter(|t| TITLES.contains(t) && !line.starts_with('\t'))
        {
            flush_row(&mut current, &mut row);
            if let Some(sec) = current.take() {
                out.sections.push(sec);
            }
            current = Some(Section {
                title: title.to_string(),
                rows: Vec::new(),
            });
            continue;
        }
        if current.is_none() {
            if !trimmed.is_empty() {
                out.other.push(trimmed.to_string());
            }
            continue;
        }
        if trimmed.is_empty() {
            flush_row(&mut current, &mut row);
            continue;
        }
        if trimmed == "No information" {
            flush_row(&mut current, &mut row);
            continue;
        }
        let indent = if line.starts_with('\t') {
            Some(Layout::Sql)
        } else if line.starts_with("        ") {
            Some(Layout::StateFile)
        } else {
            None
        };
        match (indent, split_field(trimmed)) {
            (Some(layout), Some((name, value))) => {
                out.layout.get_or_insert(layout);
                row.push((name.to_string(), value.to_string()));
            }
            _ => match row.last_mut() {
                // A value continued on the next line (multi-line libpq error text).
                Some((_, value)) => {
                    value.push('\n');
                    value.push_str(trimmed);
                }
                None => out.other.push(trimmed.to_string()),
            },
        }
    }
    flush_row(&mut current, &mut row);
    if let Some(sec) = current.take() {
        out.sections.push(sec);
    }
    out
}

/// `name<pad> : value` or `name<pad>: value`, where name is a lower-case identifier.
fn split_field(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim_end();
    let ident = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    ident.then(|| (name, value.trim()))
}
