//! Bordered tables as Python's `patronictl` draws them (PrettyTable with a title in the top
//! border), so operators and screen-scraping scripts see the same layout.

/// How a column's cells (and its header) are justified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Padded on the right.
    Left,
    /// Padded on the left (numbers, LSNs, lags).
    Right,
}

/// A table: header names, their alignment, rows of cells (a cell may hold several lines).
#[derive(Debug, Clone, Default)]
pub struct Pretty {
    /// Written into the top border (`+ Cluster: demo (7…) ---+---`); empty for none.
    pub title: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Alignment per column.
    pub align: Vec<Align>,
    /// The cells, already as text.
    pub rows: Vec<Vec<String>>,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn justify(s: &str, w: usize, a: Align) -> String {
    let pad = " ".repeat(w.saturating_sub(width(s)));
    match a {
        Align::Left => format!("{s}{pad}"),
        Align::Right => format!("{pad}{s}"),
    }
}

impl Pretty {
    /// The table as text, without a final newline. A rule follows every row when any cell spans
    /// several lines, as PrettyTable's `ALL` rules; otherwise only the frame.
    pub fn render(&self) -> String {
        let n = self.columns.len();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| width(c)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(n) {
                for line in cell.split('\n') {
                    widths[i] = widths[i].max(width(line));
                }
            }
        }
        let align = |i: usize| self.align.get(i).copied().unwrap_or(Align::Left);
        let rule: String = format!(
            "+{}+",
            widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("+")
        );
        let line = |cells: Vec<&str>| -> String {
            let inner: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        " {} ",
                        justify(cells.get(i).unwrap_or(&""), widths[i], align(i))
                    )
                })
                .collect();
            format!("|{}|", inner.join("|"))
        };
        let mut top = rule.clone();
        if !self.title.is_empty() {
            let total = width(&rule);
            let title: String = self.title.chars().take(total.saturating_sub(2)).collect();
            let tail: String = rule.chars().skip(1 + width(&title)).collect();
            top = format!("+{title}{tail}");
        }
        let all_rules = self.rows.iter().any(|r| r.iter().any(|c| c.contains('\n')));
        let mut out = vec![
            top,
            line(self.columns.iter().map(String::as_str).collect()),
            rule.clone(),
        ];
        for row in &self.rows {
            let height = row.iter().map(|c| c.split('\n').count()).max().unwrap_or(1);
            for k in 0..height {
                let cells: Vec<&str> = row
                    .iter()
                    .map(|c| c.split('\n').nth(k).unwrap_or(""))
                    .collect();
                out.push(line(cells));
            }
            if all_rules {
                out.push(rule.clone());
            }
        }
        if !all_rules || self.rows.is_empty() {
            out.push(rule);
        }
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn layout_matches_prettytable() {
        use Align::{Left as L, Right as R};
        let mut t = Pretty {
            title: " Cluster: demo (7345678901234567890) ".into(),
            columns: cols(&[
                "Member",
                "Host",
                "Role",
                "State",
                "TL",
                "Receive LSN",
                "Lag",
                "Tags",
            ]),
            align: vec![L, L, L, L, R, R, R, L],
            rows: vec![
                cols(&[
                    "node1",
                    "127.0.0.1:5432",
                    "Leader",
                    "running",
                    "1",
                    "",
                    "",
                    "",
                ]),
                cols(&[
                    "node2",
                    "127.0.0.1:5433",
                    "Sync Standby",
                    "streaming",
                    "1",
                    "0/3000060",
                    "12",
                    "nofailover: true",
                ]),
            ],
        };
        // What Python's patronictl (PrettyTable 3) prints for the same rows.
        assert_eq!(
            t.render(),
            "+ Cluster: demo (7345678901234567890) ---+-----------+----+-------------+-----+------------------+\n\
             | Member | Host           | Role         | State     | TL | Receive LSN | Lag | Tags             |\n\
             +--------+----------------+--------------+-----------+----+-------------+-----+------------------+\n\
             | node1  | 127.0.0.1:5432 | Leader       | running   |  1 |             |     |                  |\n\
             | node2  | 127.0.0.1:5433 | Sync Standby | streaming |  1 |   0/3000060 |  12 | nofailover: true |\n\
             +--------+----------------+--------------+-----------+----+-------------+-----+------------------+"
        );
        t.rows[1][7] = "clonefrom: true\nnofailover: true".into();
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8);
        assert_eq!(lines[4], lines[2], "a rule after every row");
        assert_eq!(
            lines[6],
            "|        |                |              |           |    |             |     | nofailover: true |"
        );
        let short = Pretty {
            title: " Cluster: a-very-long-name (1) ".into(),
            columns: cols(&["A", "B"]),
            align: vec![L, L],
            rows: vec![cols(&["x", "y"])],
        };
        assert!(short.render().starts_with("+ Cluste+\n| A | B |"));
        let empty = Pretty {
            title: String::new(),
            columns: cols(&["TL", "LSN"]),
            align: vec![R, R],
            rows: vec![],
        };
        assert_eq!(
            empty.render(),
            "+----+-----+\n| TL | LSN |\n+----+-----+\n+----+-----+"
        );
    }
}
