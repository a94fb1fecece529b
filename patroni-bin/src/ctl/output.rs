//! The output formats of Python's `patronictl` (`-f pretty|tsv|json|yaml`), with its rules for
//! each: one-line `json.dumps` in column order, sorted YAML, tab-separated values with a header
//! line, and bordered tables.

use std::fmt::Write as _;

use serde_json::Value;

use super::pretty::{Align, Pretty};
use super::yaml;

/// How a command prints rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A bordered table.
    #[default]
    Pretty,
    /// Tab-separated (or `--delimiter`) values with a header line.
    Tsv,
    /// One JSON array of objects.
    Json,
    /// A YAML list of mappings.
    Yaml,
    /// A bordered table with replicas indented under the member they stream from.
    Topology,
}

impl Format {
    /// Parses Python's names (`yml` is `yaml`).
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "pretty" => Format::Pretty,
            "tsv" => Format::Tsv,
            "json" => Format::Json,
            "yaml" | "yml" => Format::Yaml,
            "topology" => Format::Topology,
            _ => return None,
        })
    }
}

/// Python's `str(value)` for the values a row holds.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) if n.is_f64() => yaml::python_float_repr(n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => py_json(v),
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (' '..='~').contains(&c) => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn json_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) if n.is_f64() => {
            out.push_str(&yaml::python_float_repr(n.as_f64().unwrap_or(0.0)))
        }
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => json_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_value(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_string(k, out);
                out.push_str(": ");
                json_value(x, out);
            }
            out.push('}');
        }
    }
}

/// Python's `json.dumps(value)`: `", "` and `": "` separators, non-ASCII escaped.
pub fn py_json(v: &Value) -> String {
    let mut out = String::new();
    json_value(v, &mut out);
    out
}

/// Objects whose keys keep the columns' order, as `json.dumps` of a Python dict does.
pub fn py_json_rows(rows: &[Vec<(String, Value)>]) -> String {
    let mut out = String::from("[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('{');
        for (j, (k, v)) in row.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            json_string(k, &mut out);
            out.push_str(": ");
            json_value(v, &mut out);
        }
        out.push('}');
    }
    out.push(']');
    out
}

/// Rows to print, as Python's `print_output` takes them.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Column names (`None` prints no header, as for a query's error line).
    pub columns: Option<Vec<String>>,
    /// Values per row, in column order.
    pub rows: Vec<Vec<Value>>,
    /// Columns justified on the right, by name.
    pub right: Vec<&'static str>,
    /// The title in the top border; when set, empty cells are left out of JSON and YAML.
    pub title: String,
}

impl Rows {
    /// The text Python's `print_output` would echo, with its final newline.
    pub fn render(&self, fmt: Format, delimiter: &str) -> String {
        let columns = self.columns.clone().unwrap_or_default();
        match fmt {
            Format::Json | Format::Yaml => {
                let elements: Vec<Vec<(String, Value)>> = self
                    .rows
                    .iter()
                    .map(|r| {
                        columns
                            .iter()
                            .zip(r)
                            .filter(|(_, v)| self.title.is_empty() || !py_str(v).is_empty())
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .collect();
                if fmt == Format::Json {
                    format!("{}\n", py_json_rows(&elements))
                } else {
                    let list: Vec<Value> = elements
                        .into_iter()
                        .map(|e| Value::Object(e.into_iter().collect()))
                        .collect();
                    format!("{}\n", yaml::dump(&Value::Array(list)))
                }
            }
            Format::Pretty | Format::Tsv | Format::Topology => {
                let list_cluster =
                    !self.title.is_empty() && columns.first().is_some_and(|c| c == "Cluster");
                let mut columns = columns;
                let mut rows: Vec<Vec<String>> = Vec::new();
                let tags = columns.iter().position(|c| c == "Tags");
                for r in &self.rows {
                    let mut cells: Vec<String> = Vec::new();
                    for (i, v) in r.iter().enumerate() {
                        let text = match v {
                            // Python formats non-empty tags as YAML; `{}` prints as it is.
                            Value::Object(m)
                                if list_cluster && Some(i) == tags && !m.is_empty() =>
                            {
                                if fmt == Format::Pretty || fmt == Format::Topology {
                                    yaml::dump(v).trim().to_string()
                                } else {
                                    yaml::dump_flow(v).trim().to_string()
                                }
                            }
                            other => py_str(other),
                        };
                        cells.push(text);
                    }
                    rows.push(cells);
                }
                if list_cluster && fmt != Format::Tsv {
                    columns.remove(0);
                    for r in &mut rows {
                        if !r.is_empty() {
                            r.remove(0);
                        }
                    }
                }
                if fmt == Format::Tsv {
                    let mut out = String::new();
                    if self.columns.is_some() {
                        out.push_str(&columns.join(delimiter));
                        out.push('\n');
                    }
                    for r in rows {
                        out.push_str(&r.join(delimiter));
                        out.push('\n');
                    }
                    return out;
                }
                let align = columns
                    .iter()
                    .map(|c| {
                        if self.right.contains(&c.as_str()) {
                            Align::Right
                        } else {
                            Align::Left
                        }
                    })
                    .collect();
                let t = Pretty {
                    title: self.title.clone(),
                    columns,
                    align,
                    rows,
                };
                format!("{}\n", t.render())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_pythons() {
        // `json.dumps` of the same list in Python 3.
        let row = vec![
            ("Cluster".to_string(), json!("d\u{e9}mo")),
            ("TL".to_string(), json!(1)),
            ("Tags".to_string(), json!({"nofailover": true, "f": 1.0})),
            ("c".to_string(), json!("a\"b\\c\n\u{1}/")),
        ];
        assert_eq!(
            py_json_rows(&[row]),
            r#"[{"Cluster": "d\u00e9mo", "TL": 1, "Tags": {"f": 1.0, "nofailover": true}, "c": "a\"b\\c\n\u0001/"}]"#
        );
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
    }

    #[test]
    fn empty_cells_are_left_out_of_titled_json() {
        let r = Rows {
            columns: Some(vec!["Cluster".into(), "Member".into(), "Lag".into()]),
            rows: vec![vec![json!("c"), json!("m"), json!("")]],
            right: vec!["Lag"],
            title: " Cluster: c (1) ".into(),
        };
        assert_eq!(
            r.render(Format::Json, "\t"),
            "[{\"Cluster\": \"c\", \"Member\": \"m\"}]\n"
        );
        assert_eq!(
            r.render(Format::Tsv, "\t"),
            "Cluster\tMember\tLag\nc\tm\t\n"
        );
        assert_eq!(
            r.render(Format::Yaml, "\t"),
            "- Cluster: c\n  Member: m\n\n"
        );
        assert!(r
            .render(Format::Pretty, "\t")
            .starts_with("+ Cluster: c (1+\n| Member | Lag |"));
    }
}
